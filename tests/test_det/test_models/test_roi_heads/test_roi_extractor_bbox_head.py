"""SingleRoIExtractor (FPN level mapping, aligned RoIAlign), Shared2FCBBoxHead (keys, targets, losses,
post-processing with scores_per_class)."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

import kiln.det.models  # noqa: F401
from kiln.det.models.roi_heads import bbox2roi, roi2bbox
from kiln.det.models.task_modules import AssignResult, RandomSampler
from kiln.registry import MODELS
from kiln.structures import InstanceData

EXTRACTOR = dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                 out_channels=4, featmap_strides=[4, 8, 16, 32])
HEAD = dict(type='Shared2FCBBoxHead', in_channels=4, fc_out_channels=16, roi_feat_size=7, num_classes=3,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False, loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))


def test_bbox2roi_round_trip():
    boxes = [torch.tensor([[0., 0., 4., 4.]]), torch.zeros(0, 4), torch.tensor([[1., 2., 3., 4.], [5., 6., 7., 8.]])]
    rois = bbox2roi(boxes)
    assert rois[:, 0].tolist() == [0., 2., 2.]
    back = roi2bbox(rois)
    assert len(back) == 3 and back[1].shape == (0, 4) and torch.equal(back[2], boxes[2])


def test_roi_extractor_levels_and_aligned_roi_align():
    ext = MODELS.build(EXTRACTOR)
    assert ext.num_inputs == 4 and [layer.spatial_scale for layer in ext.roi_layers] == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    # sqrt(area) < 112 -> level 0, < 224 -> 1, < 448 -> 2, else 3 (finest_scale 56)
    rois = torch.tensor([[0, 0, 0, 50, 50], [0, 0, 0, 150, 150], [1, 0, 0, 300, 300], [0, 0, 0, 600, 600],
                         [1, 0, 0, 111, 111], [0, 0, 0, 112, 112]], dtype=torch.float32)
    assert ext.map_roi_levels(rois, 4).tolist() == [0, 1, 2, 3, 0, 1]
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 4, 160 // s, 160 // s, generator=g) for s in (4, 8, 16, 32)] + [torch.randn(2, 4, 3, 3)]
    out = ext(feats, rois)
    assert out.shape == (6, 4, 7, 7)
    for i, lvl in enumerate([0, 1, 2, 3, 0, 1]):
        ref = roi_align(feats[lvl], rois[i:i + 1], 7, 1 / ext.featmap_strides[lvl], 0, True)
        torch.testing.assert_close(out[i:i + 1], ref)
    # aligned=True: on a map equal to its x coordinate, a box over pixels [0, 8) gives bin i the value at the bin
    # centre shifted by half a pixel, (i + 0.5) * 8 / 7 - 0.5 (interior bins; the border bins clamp to the map)
    ramp = torch.arange(8.).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    one_level = MODELS.build(dict(EXTRACTOR, out_channels=1, featmap_strides=[1]))
    pooled = one_level([ramp], torch.tensor([[0., 0, 0, 8, 8]]))
    torch.testing.assert_close(pooled[0, 0, 0, 1:6], (torch.arange(1., 6.) + 0.5) * 8 / 7 - 0.5)


def test_shared2fc_head_keys_forward_and_init():
    torch.manual_seed(0)
    head = MODELS.build(HEAD)
    head.init_weights()
    assert list(head.state_dict()) == ['fc_cls.weight', 'fc_cls.bias', 'fc_reg.weight', 'fc_reg.bias',
                                       'shared_fcs.0.weight', 'shared_fcs.0.bias', 'shared_fcs.1.weight',
                                       'shared_fcs.1.bias']
    assert head.shared_fcs[0].in_features == 4 * 49 and head.fc_cls.out_features == 4 and head.fc_reg.out_features == 12
    assert head.fc_reg.weight.std() < 0.003 and head.fc_cls.bias.abs().max() == 0
    cls, reg = head(torch.randn(5, 4, 7, 7))
    assert cls.shape == (5, 4) and reg.shape == (5, 12)
    agnostic = MODELS.build(dict(HEAD, reg_class_agnostic=True))
    assert agnostic.fc_reg.out_features == 4


def test_bbox_head_targets_and_losses():
    torch.manual_seed(0)
    head = MODELS.build(HEAD)
    gt = InstanceData(bboxes=torch.tensor([[10., 10., 50., 50.]]), labels=torch.tensor([2]))
    priors = torch.tensor([[12., 10., 50., 52.], [100., 100., 140., 140.], [0., 0., 20., 20.]])
    assign = AssignResult(1, torch.tensor([1, 0, 0]), torch.tensor([0.9, 0., 0.1]), torch.tensor([2, -1, -1]))
    res = RandomSampler(num=8, pos_fraction=0.5, add_gt_as_proposals=True).sample(
        assign, InstanceData(priors=priors), gt)
    labels, label_w, bbox_t, bbox_w = head.get_targets([res], dict(pos_weight=-1))
    assert labels.tolist() == [2, 2, 3, 3] and label_w.tolist() == [1.] * 4
    torch.testing.assert_close(bbox_t[0], torch.zeros(4))  # the gt as its own proposal
    torch.testing.assert_close(bbox_t[1], head.bbox_coder.encode(priors[:1], gt.bboxes)[0])
    assert bbox_w[:, 0].tolist() == [1., 1., 0., 0.]
    rois = bbox2roi([res.priors])
    cls = torch.randn(4, 4)
    reg = torch.randn(4, 12)
    losses = head.loss_and_target(cls, reg, rois, [res], dict(pos_weight=-1))['loss_bbox']
    torch.testing.assert_close(losses['loss_cls'], F.cross_entropy(cls, labels), rtol=1e-5, atol=1e-6)
    manual_l1 = (reg.view(4, 3, 4)[:2, 2] - bbox_t[:2]).abs().sum() / 4  # positives' class-2 deltas / all RoIs
    torch.testing.assert_close(losses['loss_bbox'], manual_l1, rtol=1e-5, atol=1e-6)
    assert losses['acc'].item() == pytest.approx(100 * (cls.argmax(1) == labels).float().mean().item())


def test_bbox_head_predict_scores_per_class_and_rescale():
    torch.manual_seed(0)
    head = MODELS.build(HEAD)
    rois = torch.tensor([[0., 10., 10., 50., 50.], [0., 60., 60., 90., 100.]])
    cls = torch.tensor([[2.0, 0.5, 0.1, 0.0], [0.1, 0.2, 3.0, 0.5]])
    reg = torch.zeros(2, 12)
    meta = dict(img_shape=(120, 120), scale_factor=(2.0, 2.0))
    cfg = dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    res = head.predict_by_feat((rois,), (cls,), (reg,), [meta], rcnn_test_cfg=cfg, rescale=True)[0]
    probs = cls.softmax(-1)
    keep = probs[:, :3] > 0.05
    assert len(res) == int(keep.sum())
    assert res.labels[0].item() == 2 and res.scores[0].item() == pytest.approx(probs[1, 2].item())
    torch.testing.assert_close(res.bboxes[0], torch.tensor([30., 30., 45., 50.]))  # zero deltas, / scale 2
    for i in range(len(res)):
        roi = 0 if res.bboxes[i, 0] < 25 else 1
        torch.testing.assert_close(res.scores_per_class[i], probs[roi, :3])  # background column dropped
    raw = head.predict_by_feat((rois,), (cls,), (reg,), [meta], rcnn_test_cfg=None)[0]
    assert raw.bboxes.shape == (2, 12) and raw.scores.shape == (2, 4)
    empty = head.predict_by_feat((rois[:0],), (cls[:0],), (reg[:0],), [meta], rcnn_test_cfg=cfg)[0]
    assert len(empty) == 0 and empty.scores_per_class.shape == (0, 3)
