"""batched_nms (MMCV semantics on torchvision nms) and multiclass_nms (MMDetection semantics)."""
import torch
from torchvision.ops import batched_nms as tv_batched_nms

from kiln.det.models.layers.bbox_nms import batched_nms, multiclass_nms

NMS = dict(type='nms', iou_threshold=0.5)


def _random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 60 + 5
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_batched_nms_groups_are_independent_and_sorted():
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [0., 0., 10., 10.], [50., 50., 60., 60.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 0, 1, 0])
    dets, keep = batched_nms(boxes, scores, idxs, NMS)
    assert keep.tolist() == [0, 2, 3]  # box 1 overlaps box 0 of its group; box 2 is alone in group 1
    torch.testing.assert_close(dets, torch.cat([boxes[keep], scores[keep, None]], 1))
    _, keep = batched_nms(boxes, scores, idxs, dict(NMS, class_agnostic=True))
    assert keep.tolist() == [0, 3]
    dets, keep = batched_nms(boxes, scores, idxs, None)  # no NMS: only sorted
    assert keep.tolist() == [0, 1, 2, 3]


def test_batched_nms_agrees_with_torchvision_in_both_code_paths():
    boxes, scores, idxs = _random_boxes(600, 0)
    ref = tv_batched_nms(boxes, scores, idxs, 0.5)
    _, keep = batched_nms(boxes, scores, idxs, NMS)  # one NMS on offset boxes
    assert set(keep.tolist()) == set(ref.tolist())
    _, keep_split = batched_nms(boxes, scores, idxs, dict(NMS, split_thr=100))  # per-group loop
    assert keep_split.tolist() == keep.tolist()
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])


def test_multiclass_nms_threshold_max_num_and_indices():
    # 3 RoIs, 2 classes (+ background column); class-specific boxes (R, 4 * C)
    boxes = torch.tensor([[0., 0., 10., 10., 100., 100., 110., 110.],
                          [1., 1., 11., 11., 100., 100., 110., 110.],
                          [50., 50., 60., 60., 0., 0., 5., 5.]])
    scores = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.05, 0.9, 0.05]])
    dets, labels, inds = multiclass_nms(boxes, scores, 0.1, NMS, return_inds=True)
    # class 0: RoI 0 keeps, RoI 1 suppressed (IoU 0.68), RoI 2 under threshold; class 1: RoIs 0 and 1 share a box
    assert labels.tolist() == [1, 0, 1] and inds.tolist() == [5, 0, 1]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.9, 0.6, 0.3]))
    torch.testing.assert_close(dets[0, :4], torch.tensor([0., 0., 5., 5.]))
    dets, labels = multiclass_nms(boxes, scores, 0.1, NMS, max_num=2)
    assert len(dets) == 2
    dets, labels = multiclass_nms(boxes[:, :4], scores, 0.95, NMS)  # shared boxes, nothing above threshold
    assert dets.shape == (0, 5) and labels.shape == (0,)
