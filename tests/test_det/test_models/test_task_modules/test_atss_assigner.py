import math

import pytest
import torch

from kiln.det.models.task_modules import ATSSAssigner
from kiln.registry import TASK_UTILS
from kiln.structures import InstanceData


def _two_level_case():
    # level 0: four 10x10 priors; level 1: one 20x20 prior
    priors = torch.tensor([[0., 0., 10., 10.],     # IoU 1 with gt0, centre inside -> positive gt0
                           [5., 0., 15., 10.],     # IoU 1/3 with gt0, centre on gt0's right edge
                           [0., 5., 10., 15.],     # IoU 1/3 with gt0, centre on gt0's bottom edge
                           [20., 20., 30., 30.],   # IoU 100/196 with gt1, centre = gt1's centre -> positive gt1
                           [0., 0., 20., 20.]])    # level 1: IoU 0.25 with gt0, centre on gt0's corner
    gts = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.], [18., 18., 32., 32.]]),
                       labels=torch.tensor([2, 0]))
    return InstanceData(priors=priors), [4, 1], gts


def test_atss_assigner_hand_case():
    pred, num_level, gts = _two_level_case()
    # gt0 candidates (topk 3 on level 0, 1 on level 1): IoUs 1, 1/3, 1/3, 1/4 -> mean 0.479 + std 0.349 = 0.829
    # gt1 candidates: IoUs 0.510, 0, 0 and 4/592 -> threshold 0.129 + 0.252 = 0.381
    res = TASK_UTILS.build(dict(type='ATSSAssigner', topk=3)).assign(pred, num_level, gts)
    assert res.num_gts == 2
    assert res.gt_inds.tolist() == [1, 0, 0, 2, 0]
    assert res.labels.tolist() == [2, -1, -1, 0, -1]
    assert res.max_overlaps[0].item() == pytest.approx(1.0)
    assert res.max_overlaps[3].item() == pytest.approx(100 / 196)
    assert math.isinf(res.max_overlaps[1].item())


def test_atss_assigner_ignore_and_empty():
    pred, num_level, gts = _two_level_case()
    ignore = InstanceData(bboxes=torch.tensor([[19., 19., 31., 31.]]))  # covers prior 3 entirely
    res = ATSSAssigner(topk=3, ignore_iof_thr=0.5).assign(pred, num_level, gts, ignore)
    # prior 3 ignored; gt1's remaining candidates have centres outside it -> no positive for gt1
    assert res.gt_inds.tolist() == [1, 0, 0, -1, 0]
    empty = ATSSAssigner(topk=3).assign(pred, num_level, InstanceData(bboxes=torch.zeros(0, 4),
                                                                      labels=torch.zeros(0, dtype=torch.long)))
    assert empty.gt_inds.tolist() == [0] * 5 and empty.labels.tolist() == [-1] * 5
    with pytest.raises(ValueError, match='num_level_priors'):
        ATSSAssigner(topk=3).assign(pred, [4], gts)
    with pytest.raises(NotImplementedError, match='alpha'):
        ATSSAssigner(topk=3, alpha=0.8)


def test_atss_assigner_prior_positive_for_two_gts_takes_highest_iou():
    pred = InstanceData(priors=torch.tensor([[0., 0., 10., 10.], [50., 50., 60., 60.], [100., 100., 110., 110.]]))
    # gtB (first): IoU 100/120 with prior 0, threshold 0.278 + 0.481; gtA: IoU 1, threshold 0.333 + 0.577
    gts = InstanceData(bboxes=torch.tensor([[0., 0., 10., 12.], [0., 0., 10., 10.]]), labels=torch.tensor([1, 2]))
    res = ATSSAssigner(topk=3).assign(pred, [3], gts)
    assert res.gt_inds.tolist() == [2, 0, 0]
    assert res.labels.tolist() == [2, -1, -1]
