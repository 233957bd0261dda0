"""Result of assigning ground-truth boxes to priors."""
from __future__ import annotations

from dataclasses import dataclass

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
