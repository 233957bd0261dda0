import torch

from kiln.det.models.task_modules import DeltaXYWHBBoxCoder, DistancePointBBoxCoder, MaxIoUAssigner
from kiln.structures import InstanceData


def test_distance_coder_round_trip_and_clip():
    coder = DistancePointBBoxCoder()
    points = torch.tensor([[10., 10.], [50., 40.]])
    boxes = torch.tensor([[0., 5., 20., 30.], [40., 30., 70., 45.]])
    dist = coder.encode(points, boxes)
    torch.testing.assert_close(dist, torch.tensor([[10., 5., 10., 20.], [10., 10., 20., 5.]]))
    torch.testing.assert_close(coder.decode(points, dist), boxes)
    torch.testing.assert_close(coder.decode(points, dist, max_shape=(40, 60))[1], torch.tensor([40., 30., 60., 40.]))


def test_delta_coder_round_trip():
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    priors = torch.tensor([[0., 0., 10., 20.], [5., 5., 15., 15.]])
    gts = torch.tensor([[2., 1., 14., 17.], [4., 6., 20., 12.]])
    deltas = coder.encode(priors, gts)
    # first prior: centre (5, 10) size (10, 20); gt centre (8, 9) size (12, 16)
    torch.testing.assert_close(deltas[0], torch.tensor([0.3 / 0.1, -0.05 / 0.1, torch.log(torch.tensor(1.2)) / 0.2,
                                                        torch.log(torch.tensor(0.8)) / 0.2]))
    torch.testing.assert_close(coder.decode(priors, deltas), gts)


def test_max_iou_assigner_hand_case():
    priors = torch.tensor([[0., 0., 10., 10.],     # IoU 1.0 with gt0 -> positive gt0
                           [0., 0., 10., 6.],      # IoU 0.6 with gt0 -> positive gt0
                           [0., 0., 10., 4.5],     # IoU 0.45 -> ignored (between 0.4 and 0.5)
                           [100., 100., 110., 110.],  # nothing -> negative
                           [25., 15., 45., 35.]])  # gt1's best prior, IoU 0.25 < 0.4: low-quality match
    gts = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.], [30., 20., 40., 30.]]), labels=torch.tensor([2, 1]))
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0)
    res = assigner.assign(InstanceData(priors=priors), gts)
    assert res.gt_inds.tolist() == [1, 1, -1, 0, 2]
    assert res.labels.tolist() == [2, 2, -1, -1, 1]
    empty = assigner.assign(InstanceData(priors=priors),
                            InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)))
    assert empty.gt_inds.tolist() == [0] * 5
    assert MaxIoUAssigner(0.5, 0.4, match_low_quality=False).assign(
        InstanceData(priors=priors), gts).gt_inds.tolist() == [1, 1, -1, 0, 0]
    assigner.ignore_iof_thr = 0.5
    ignored = assigner.assign(InstanceData(priors=priors), gts,
                              InstanceData(bboxes=torch.tensor([[95., 95., 120., 120.]]), labels=torch.tensor([0])))
    assert ignored.gt_inds.tolist() == [1, 1, -1, -1, 2]
