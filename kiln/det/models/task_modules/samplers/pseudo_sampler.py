"""``PseudoSampler``: keep every assigned prior (no sampling), as MMDetection uses for focal-loss heads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS


@dataclass
class SamplingResult:
    """Positive / negative prior indices of one image (int64 (N_pos,), (N_neg,)) and their matched boxes."""

    pos_inds: Tensor
    neg_inds: Tensor
    pos_assigned_gt_inds: Tensor
    pos_gt_bboxes: Tensor
    pos_priors: Tensor

    @property
    def num_pos(self) -> int:
        return self.pos_inds.numel()

    @property
    def avg_factor(self) -> int:
        """Loss normaliser: the number of positives (PseudoSampler)."""
        return self.num_pos


@TASK_UTILS.register_module()
@MODELS.register_module()
class PseudoSampler:
    """Return all positives (``gt_inds > 0``) and negatives (``gt_inds == 0``) of an :class:`AssignResult`."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def sample(self, assign_result: Any, pred_instances: Any, gt_instances: Any, **kwargs: Any) -> SamplingResult:
        """Split an assignment into index tensors (this syncs the device; heads use the masks directly)."""
        gt_inds = assign_result.gt_inds
        pos_inds = torch.nonzero(gt_inds > 0).flatten()
        neg_inds = torch.nonzero(gt_inds == 0).flatten()
        assigned = gt_inds[pos_inds] - 1
        gt_bboxes = gt_instances.bboxes
        pos_gt = gt_bboxes[assigned] if gt_bboxes.numel() else gt_bboxes.new_zeros((0, 4))
        return SamplingResult(pos_inds, neg_inds, assigned, pos_gt, pred_instances.priors[pos_inds])
