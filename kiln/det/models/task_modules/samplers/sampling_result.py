"""``SamplingResult``: the positive / negative priors a sampler picked for one image (MMDetection 3.x)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class SamplingResult:
    """Positive and negative priors of one image, with the ground truth matched to each positive.

    Args:
        pos_inds, neg_inds: int64 (N_pos,), (N_neg,) indices into ``priors``.
        priors: float (P, 4) xyxy pixels (for ``add_gt_as_proposals`` samplers the ground-truth boxes come first).
        gt_bboxes: float (G, 4) xyxy pixels.
        assign_result: the :class:`AssignResult` the indices refer to (``gt_inds`` 1-based, ``labels``).
        gt_flags: uint8 (P,), 1 where the prior is a ground-truth box added as a proposal.
        avg_factor_with_neg: loss normaliser ``avg_factor`` is ``num_pos + num_neg`` (samplers that pick a fixed
            number of priors, e.g. ``RandomSampler``) or ``num_pos`` (``PseudoSampler``).

    Attributes (as in MMDetection): ``pos_priors``, ``neg_priors``, ``priors`` (positives then negatives),
    ``pos_is_gt``, ``num_gts``, ``pos_assigned_gt_inds`` (0-based), ``pos_gt_labels``, ``pos_gt_bboxes``,
    ``num_pos`` / ``num_neg`` (at least 1, so they can divide) and ``avg_factor``.
    """

    def __init__(self, pos_inds: Tensor, neg_inds: Tensor, priors: Tensor, gt_bboxes: Tensor, assign_result: Any,
                 gt_flags: Tensor, avg_factor_with_neg: bool = True) -> None:
        self.pos_inds = pos_inds
        self.neg_inds = neg_inds
        self.num_pos = max(pos_inds.numel(), 1)
        self.num_neg = max(neg_inds.numel(), 1)
        self.avg_factor_with_neg = avg_factor_with_neg
        self.avg_factor = self.num_pos + self.num_neg if avg_factor_with_neg else self.num_pos
        self.pos_priors = priors[pos_inds]
        self.neg_priors = priors[neg_inds]
        self.pos_is_gt = gt_flags[pos_inds]
        self.num_gts = gt_bboxes.shape[0]
        self.pos_assigned_gt_inds = assign_result.gt_inds[pos_inds] - 1
        self.pos_gt_labels = assign_result.labels[pos_inds]
        if gt_bboxes.numel() == 0:
            self.pos_gt_bboxes = gt_bboxes.reshape(-1, 4)[:0].new_zeros((pos_inds.numel(), 4))
        else:
            self.pos_gt_bboxes = gt_bboxes.reshape(-1, 4)[self.pos_assigned_gt_inds.long()]

    @property
    def priors(self) -> Tensor:
        """float (N_pos + N_neg, 4): positive priors, then negative priors."""
        return torch.cat([self.pos_priors, self.neg_priors])

    def to(self, device: Any) -> 'SamplingResult':
        """Move every tensor attribute to ``device`` (in place); returns self."""
        for key, value in vars(self).items():
            if isinstance(value, Tensor):
                setattr(self, key, value.to(device))
        return self

    def __repr__(self) -> str:
        return (f'SamplingResult(num_pos={self.pos_inds.numel()}, num_neg={self.neg_inds.numel()}, '
                f'num_gts={self.num_gts}, avg_factor={self.avg_factor})')
