"""``PseudoSampler``: keep every assigned prior (no sampling), as MMDetection uses for focal-loss heads."""
from __future__ import annotations

from typing import Any

import torch

from kiln.registry import MODELS, TASK_UTILS

from .sampling_result import SamplingResult


@TASK_UTILS.register_module()
@MODELS.register_module()
class PseudoSampler:
    """Return all positives (``gt_inds > 0``) and negatives (``gt_inds == 0``) of an :class:`AssignResult`;
    the result's ``avg_factor`` is the number of positives."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def sample(self, assign_result: Any, pred_instances: Any, gt_instances: Any, **kwargs: Any) -> SamplingResult:
        """Split an assignment into index tensors (this syncs the device; heads use the masks directly)."""
        priors = pred_instances.priors
        gt_inds = assign_result.gt_inds
        pos_inds = torch.nonzero(gt_inds > 0).flatten()
        neg_inds = torch.nonzero(gt_inds == 0).flatten()
        gt_flags = priors.new_zeros(priors.shape[0], dtype=torch.uint8)
        return SamplingResult(pos_inds, neg_inds, priors, gt_instances.bboxes, assign_result, gt_flags,
                              avg_factor_with_neg=False)
