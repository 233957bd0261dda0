"""RandomSampler / PseudoSampler / SamplingResult / AssignResult.add_gt_ and the (N, 4k) delta decoding."""
import math

import pytest
import torch

from kiln.det.models.task_modules import (AssignResult, DeltaXYWHBBoxCoder, MaxIoUAssigner, PseudoSampler,
                                          RandomSampler)
from kiln.registry import TASK_UTILS
from kiln.structures import InstanceData


def _assign(num_pos, num_neg, num_ignored=0):
    gt_inds = torch.cat([torch.ones(num_pos, dtype=torch.long), torch.zeros(num_neg, dtype=torch.long),
                         torch.full((num_ignored,), -1, dtype=torch.long)])
    perm = torch.randperm(gt_inds.numel(), generator=torch.Generator().manual_seed(1))
    gt_inds = gt_inds[perm]
    labels = torch.where(gt_inds > 0, torch.full_like(gt_inds, 2), torch.full_like(gt_inds, -1))
    return AssignResult(1, gt_inds, torch.rand(gt_inds.numel()), labels)


def _instances(n):
    xy = torch.rand(n, 2) * 50
    return InstanceData(priors=torch.cat([xy, xy + 10], 1))


def test_random_sampler_counts_fraction_and_avg_factor():
    sampler = TASK_UTILS.build(dict(type='RandomSampler', num=32, pos_fraction=0.25, neg_pos_ub=-1,
                                    add_gt_as_proposals=False))
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]), labels=torch.tensor([2]))
    priors = _instances(125)
    assign = _assign(20, 100, 5)
    torch.manual_seed(0)
    res = sampler.sample(assign, priors, gt)
    assert res.pos_inds.numel() == 8 and res.neg_inds.numel() == 24  # 25 % of 32 positive, rest negative
    assert torch.all(assign.gt_inds[res.pos_inds] == 1) and torch.all(assign.gt_inds[res.neg_inds] == 0)
    assert torch.all(res.pos_inds[1:] > res.pos_inds[:-1])  # unique() sorts, as in MMDetection
    assert res.avg_factor == 32 and res.pos_gt_labels.tolist() == [2] * 8
    assert res.priors.shape == (32, 4) and torch.equal(res.pos_gt_bboxes, gt.bboxes.expand(8, 4))
    # seeded: the same draw again; a different seed draws another subset
    fresh = _assign(20, 100, 5)
    torch.manual_seed(0)
    again = sampler.sample(fresh, priors, gt)
    assert torch.equal(again.pos_inds, res.pos_inds) and torch.equal(again.neg_inds, res.neg_inds)
    fresh = _assign(20, 100, 5)
    torch.manual_seed(1)
    other = sampler.sample(fresh, priors, gt)
    assert not torch.equal(other.neg_inds, res.neg_inds)


def test_random_sampler_few_positives_neg_pos_ub_and_gt_as_proposals():
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.], [5., 5., 20., 20.]]), labels=torch.tensor([0, 1]))
    res = RandomSampler(num=16, pos_fraction=0.5, add_gt_as_proposals=False).sample(_assign(3, 40), _instances(43), gt)
    assert res.pos_inds.numel() == 3 and res.neg_inds.numel() == 13  # missing positives are filled by negatives
    res = RandomSampler(num=16, pos_fraction=0.5, neg_pos_ub=2, add_gt_as_proposals=False).sample(
        _assign(3, 40), _instances(43), gt)
    assert res.neg_inds.numel() == 6 and res.avg_factor == 9
    res = RandomSampler(num=16, pos_fraction=0.5, add_gt_as_proposals=False).sample(_assign(0, 40), _instances(40), gt)
    assert res.pos_inds.numel() == 0 and res.num_pos == 1 and res.avg_factor == 1 + 16  # num_pos is at least 1
    assign = _assign(3, 40)
    priors = _instances(43)
    res = RandomSampler(num=64, pos_fraction=0.5, add_gt_as_proposals=True).sample(assign, priors, gt)
    # ground truths are prepended as positives assigned to themselves
    assert assign.gt_inds[:2].tolist() == [1, 2] and assign.labels[:2].tolist() == [0, 1]
    assert assign.max_overlaps[:2].tolist() == [1.0, 1.0] and assign.num_preds == 45
    assert res.pos_inds.numel() == 5 and res.pos_is_gt.tolist()[:2] == [1, 1] and res.pos_is_gt.sum() == 2
    assert torch.equal(res.pos_priors[:2], gt.bboxes)
    with pytest.raises(ValueError, match='pos_fraction'):
        RandomSampler(num=8, pos_fraction=1.5)


def test_pseudo_sampler_avg_factor_counts_positives():
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]), labels=torch.tensor([1]))
    res = PseudoSampler().sample(_assign(4, 6, 2), _instances(12), gt)
    assert res.pos_inds.numel() == 4 and res.neg_inds.numel() == 6 and res.avg_factor == 4


def test_rpn_style_assign_then_sample_end_to_end():
    priors = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.], [0., 0., 9., 9.]])
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]), labels=torch.tensor([0]))
    assign = MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3).assign(InstanceData(priors=priors), gt)
    assert assign.gt_inds.tolist() == [1, -1, 0, 1]  # IoU 1.0, 0.68 (ignored), 0, 0.81
    res = RandomSampler(num=4, pos_fraction=0.5, add_gt_as_proposals=False).sample(
        assign, InstanceData(priors=priors), gt)
    assert res.pos_inds.numel() == 2 and res.neg_inds.tolist() == [2]


def test_delta_coder_decodes_per_class_deltas_and_clamps():
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    priors = torch.tensor([[0., 0., 10., 20.], [5., 5., 15., 15.]])
    gts = torch.tensor([[2., 1., 14., 17.], [4., 6., 20., 12.]])
    d = coder.encode(priors, gts)
    # (N, 4 * k): k boxes per prior, each decoded against the same prior
    out = coder.decode(priors, torch.cat([d, torch.zeros_like(d)], 1))
    assert out.shape == (2, 8)
    torch.testing.assert_close(out[:, :4], gts)
    torch.testing.assert_close(out[:, 4:], priors)
    clipped = coder.decode(priors, torch.cat([d, d], 1), max_shape=(16, 12))
    assert clipped[:, 0::2].max() <= 12 and clipped[:, 1::2].max() <= 16
    huge = coder.decode(priors[:1], torch.tensor([[0., 0., 100., 0.]]))
    assert huge[0, 2] - huge[0, 0] == pytest.approx(10 * 1000 / 16, rel=1e-4)  # |dw| <= |log(16 / 1000)|
    ctr = DeltaXYWHBBoxCoder(add_ctr_clamp=True, ctr_clamp=2).decode(priors[:1], torch.tensor([[5., 0., 0., 0.]]))
    torch.testing.assert_close(ctr, torch.tensor([[2., 0., 12., 20.]]))
    assert math.isclose(float(coder.decode(priors[:0], d[:0]).numel()), 0.0)
    with pytest.raises(ValueError, match=r'\(N, 4k\)'):
        coder.decode(priors, torch.zeros(2, 5))
