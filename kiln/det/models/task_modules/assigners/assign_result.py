"""Result of assigning ground-truth boxes to priors."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class AssignResult:
    """Assignment of ``num_gts`` ground truths to P priors (MMDetection ``AssignResult``).

    Attributes:
        num_gts: number of ground-truth boxes.
        gt_inds: int64 (P,): 0 = negative, -1 = ignored, i + 1 = assigned to ground truth i.
        max_overlaps: float (P,): IoU of each prior with its best ground truth.
        labels: int64 (P,): class of the assigned ground truth, -1 where unassigned.
    """

    num_gts: int
    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor

    @property
    def num_preds(self) -> int:
        """Number of priors P."""
        return self.gt_inds.numel()

    def add_gt_(self, gt_labels: Tensor) -> None:
        """Prepend the ``G`` ground truths as priors assigned to themselves (IoU 1), in place; used by samplers
        with ``add_gt_as_proposals`` (MMDetection ``AssignResult.add_gt_``)."""
        self_inds = torch.arange(1, len(gt_labels) + 1, dtype=torch.long, device=gt_labels.device)
        self.gt_inds = torch.cat([self_inds, self.gt_inds])
        self.max_overlaps = torch.cat([self.max_overlaps.new_ones(len(gt_labels)), self.max_overlaps])
        self.labels = torch.cat([gt_labels.to(self.labels.dtype), self.labels])
