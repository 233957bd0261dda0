"""IoU-threshold assigner (Faster R-CNN / RetinaNet); MMDetection ``MaxIoUAssigner`` semantics, vectorised."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS

from .assign_result import AssignResult


def box_iof(boxes: Tensor, regions: Tensor) -> Tensor:
    """Intersection over the area of ``boxes``: float (P, 4), (G, 4) xyxy -> (P, G)."""
    lt = torch.max(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], regions[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    return wh[..., 0] * wh[..., 1] / area[:, None]


@TASK_UTILS.register_module()
@MODELS.register_module()
class MaxIoUAssigner:
    """Assign each prior to the ground truth it overlaps most (IoU from ``torchvision.ops.box_iou``).

    A prior is negative (0) when its max IoU is in ``[0, neg_iou_thr)`` (or inside the ``(lo, hi)`` tuple),
    positive when >= ``pos_iou_thr``, otherwise ignored (-1). With ``match_low_quality`` every ground truth also
    takes the prior(s) of its highest IoU when that IoU is >= ``min_pos_iou`` (all tied priors with
    ``gt_max_assign_all``; later ground truths win ties, as in MMDetection's loop).

    Args:
        pos_iou_thr, neg_iou_thr, min_pos_iou, gt_max_assign_all, match_low_quality: see above.
        ignore_iof_thr: priors whose intersection-over-prior-area with an ignored box exceeds this get IoU -1
            (ignored); <= 0 disables it.
        ignore_wrt_candidates: must be True (IoF relative to the priors).
        gpu_assign_thr, iou_calculator: accepted for config compatibility (IoU is always 2-D box IoU).
    """

    def __init__(self, pos_iou_thr: float, neg_iou_thr: float | tuple[float, float], min_pos_iou: float = 0.0,
                 gt_max_assign_all: bool = True, ignore_iof_thr: float = -1, ignore_wrt_candidates: bool = True,
                 match_low_quality: bool = True, gpu_assign_thr: float = -1,
                 iou_calculator: dict[str, Any] | None = None) -> None:
        if not ignore_wrt_candidates:
            raise NotImplementedError('MaxIoUAssigner: ignore_wrt_candidates=False is not supported')
        if iou_calculator is not None and iou_calculator.get('type', 'BboxOverlaps2D') != 'BboxOverlaps2D':
            raise NotImplementedError(f'MaxIoUAssigner: iou_calculator {iou_calculator} is not supported')
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = ignore_iof_thr
        self.match_low_quality = match_low_quality

    def assign(self, pred_instances: Any, gt_instances: Any, gt_instances_ignore: Any = None) -> AssignResult:
        """Assign.

        Args:
            pred_instances: has ``priors`` float (P, 4) xyxy pixels.
            gt_instances: has ``bboxes`` float (G, 4) xyxy and ``labels`` int64 (G,).
            gt_instances_ignore: optional, has ``bboxes`` (Gi, 4).

        Returns:
            :class:`AssignResult` (no host-device sync).
        """
        from torchvision.ops import box_iou
        priors = pred_instances.priors
        gt_bboxes, gt_labels = gt_instances.bboxes, gt_instances.labels
        num_gts, num_priors = gt_bboxes.size(0), priors.size(0)
        if num_gts == 0 or num_priors == 0:
            # no ground truth: every prior is negative
            return AssignResult(num_gts, priors.new_zeros(num_priors, dtype=torch.long),
                                priors.new_zeros(num_priors), priors.new_full((num_priors,), -1, dtype=torch.long))
        overlaps = box_iou(gt_bboxes, priors)  # (G, P)
        ignore = getattr(gt_instances_ignore, 'bboxes', None) if gt_instances_ignore is not None else None
        if self.ignore_iof_thr > 0 and ignore is not None and ignore.numel() > 0:
            ignored = box_iof(priors, ignore).max(dim=1).values > self.ignore_iof_thr
            overlaps = overlaps.masked_fill(ignored[None, :], -1.0)
        return self.assign_wrt_overlaps(overlaps, gt_labels)

    def assign_wrt_overlaps(self, overlaps: Tensor, gt_labels: Tensor) -> AssignResult:
        """Assign from an IoU matrix float (G, P) (G >= 1) and labels int64 (G,)."""
        num_gts, num_priors = overlaps.shape
        max_overlaps, argmax = overlaps.max(dim=0)
        gt_max, _ = overlaps.max(dim=1)
        gt_inds = overlaps.new_full((num_priors,), -1, dtype=torch.long)
        if isinstance(self.neg_iou_thr, (int, float)):
            neg = (max_overlaps >= 0) & (max_overlaps < self.neg_iou_thr)
        else:
            lo, hi = self.neg_iou_thr
            neg = (max_overlaps >= lo) & (max_overlaps < hi)
        gt_inds = gt_inds.masked_fill(neg, 0)
        pos = max_overlaps >= self.pos_iou_thr
        gt_inds = torch.where(pos, argmax + 1, gt_inds)
        if self.match_low_quality:
            ids = torch.arange(1, num_gts + 1, device=overlaps.device)[:, None]
            if self.gt_max_assign_all:
                hit = (overlaps == gt_max[:, None]) & (gt_max[:, None] >= self.min_pos_iou)
            else:
                hit = torch.zeros_like(overlaps, dtype=torch.bool)
                hit[torch.arange(num_gts, device=overlaps.device), overlaps.argmax(dim=1)] = True
                hit &= gt_max[:, None] >= self.min_pos_iou
            last = (hit.long() * ids).max(dim=0).values  # the last matching gt wins, like the reference loop
            gt_inds = torch.where(last > 0, last, gt_inds)
        labels = torch.where(gt_inds > 0, gt_labels[(gt_inds - 1).clamp(min=0)], gt_inds.new_full((), -1))
        return AssignResult(num_gts, gt_inds, max_overlaps, labels)
