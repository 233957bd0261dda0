"""``RandomSampler``: a fixed-size random subset of positive and negative priors (Faster R-CNN's RPN and RoI
sampling); MMDetection ``RandomSampler`` / ``BaseSampler.sample`` semantics."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS

from .sampling_result import SamplingResult


@TASK_UTILS.register_module()
@MODELS.register_module()
class RandomSampler:
    """Sample ``num`` priors per image, at most ``num * pos_fraction`` of them positive.

    Args:
        num: priors per image (positives + negatives).
        pos_fraction: upper bound on the positive share.
        neg_pos_ub: if >= 0, at most ``neg_pos_ub * max(num_pos, 1)`` negatives.
        add_gt_as_proposals: prepend the ground-truth boxes to the priors (as positives of themselves); the
            RoI head uses this so that every image has positives.
        context, **kwargs: accepted for config compatibility (MMDetection passes the RoI head as ``context``).

    Positives are ``gt_inds > 0`` and negatives ``gt_inds == 0`` of the assignment. When there are more
    candidates than wanted, a subset is chosen with ``torch.randperm`` on the default CPU generator (one call for
    positives, then one for negatives, exactly as MMDetection does, so a seeded run draws the same subset).

    Raises:
        ValueError: ``num`` < 1 or ``pos_fraction`` outside [0, 1].
    """

    def __init__(self, num: int, pos_fraction: float, neg_pos_ub: int = -1, add_gt_as_proposals: bool = True,
                 context: Any = None, **kwargs: Any) -> None:
        if num < 1 or not 0 <= pos_fraction <= 1:
            raise ValueError(f'RandomSampler: need num >= 1 and 0 <= pos_fraction <= 1, got num={num}, '
                             f'pos_fraction={pos_fraction}')
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    @staticmethod
    def random_choice(gallery: Tensor, num: int) -> Tensor:
        """``num`` distinct random elements of the 1-D tensor ``gallery`` (random order)."""
        perm = torch.randperm(gallery.numel())[:num].to(device=gallery.device)
        return gallery[perm]

    def _sample(self, mask: Tensor, num_expected: int) -> Tensor:
        inds = torch.nonzero(mask).flatten()
        if inds.numel() <= num_expected:
            return inds
        return self.random_choice(inds, num_expected)

    def sample(self, assign_result: Any, pred_instances: Any, gt_instances: Any, **kwargs: Any) -> SamplingResult:
        """Sample one image.

        Args:
            assign_result: :class:`AssignResult` over ``pred_instances.priors`` (modified in place when
                ``add_gt_as_proposals``: the ground truths are prepended, as MMDetection does).
            pred_instances: has ``priors`` float (P, 4) xyxy pixels.
            gt_instances: has ``bboxes`` float (G, 4) and ``labels`` int64 (G,).

        Returns:
            :class:`SamplingResult` with ``avg_factor = num_pos + num_neg``.
        """
        priors = pred_instances.priors
        if priors.dim() < 2:
            priors = priors[None, :]
        gt_bboxes, gt_labels = gt_instances.bboxes, gt_instances.labels
        gt_flags = priors.new_zeros((priors.shape[0],), dtype=torch.uint8)
        if self.add_gt_as_proposals and len(gt_bboxes) > 0:
            priors = torch.cat([gt_bboxes.to(priors.dtype), priors], dim=0)
            assign_result.add_gt_(gt_labels)
            gt_flags = torch.cat([priors.new_ones(gt_bboxes.shape[0], dtype=torch.uint8), gt_flags])
        num_expected_pos = int(self.num * self.pos_fraction)
        pos_inds = self._sample(assign_result.gt_inds > 0, num_expected_pos).unique()
        num_expected_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_expected_neg = min(num_expected_neg, int(self.neg_pos_ub * max(1, pos_inds.numel())))
        neg_inds = self._sample(assign_result.gt_inds == 0, num_expected_neg).unique()
        return SamplingResult(pos_inds, neg_inds, priors, gt_bboxes, assign_result, gt_flags)
