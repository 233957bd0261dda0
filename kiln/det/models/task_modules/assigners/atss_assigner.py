"""Adaptive Training Sample Selection (ATSS) assigner; MMDetection ``ATSSAssigner`` semantics, vectorised."""
from __future__ import annotations

from typing import Any

import torch

from kiln.registry import MODELS, TASK_UTILS

from .assign_result import AssignResult
from .max_iou_assigner import box_iof


@TASK_UTILS.register_module()
@MODELS.register_module()
class ATSSAssigner:
    """Assign priors to ground truths by the statistics of their IoU (Zhang et al., "Bridging the Gap Between
    Anchor-based and Anchor-free Detection via Adaptive Training Sample Selection", CVPR 2020).

    For every ground truth: on each pyramid level take the ``topk`` priors whose centres are closest (L2) to the
    box centre; the IoU threshold is the mean + standard deviation (unbiased) of those candidates' IoUs; a candidate
    is positive when its IoU >= the threshold and its centre lies inside the box (by more than 0.01 px). A prior
    positive for several ground truths goes to the one of highest IoU. Every other prior is negative (0).

    Args:
        topk: candidates per level and ground truth (fewer when a level has fewer priors).
        alpha: TOOD's dynamic cost (``score ** (1 - alpha) * IoU ** alpha``); only ``None`` (plain IoU) is
            supported.
        iou_calculator: accepted for config compatibility (IoU is ``torchvision.ops.box_iou``).
        ignore_iof_thr: priors whose intersection-over-prior-area with an ignored box exceeds this are ignored
            (-1) and never candidates; <= 0 disables it.

    Raises:
        NotImplementedError: ``alpha`` is not None, or an ``iou_calculator`` other than ``BboxOverlaps2D``.
    """

    def __init__(self, topk: int, alpha: float | None = None, iou_calculator: dict[str, Any] | None = None,
                 ignore_iof_thr: float = -1) -> None:
        if alpha is not None:
            raise NotImplementedError('ATSSAssigner: alpha (the TOOD dynamic cost) is not supported')
        if iou_calculator is not None and iou_calculator.get('type', 'BboxOverlaps2D') != 'BboxOverlaps2D':
            raise NotImplementedError(f'ATSSAssigner: iou_calculator {iou_calculator} is not supported')
        self.topk = topk
        self.alpha = alpha
        self.ignore_iof_thr = ignore_iof_thr

    def assign(self, pred_instances: Any, num_level_priors: list[int], gt_instances: Any,
               gt_instances_ignore: Any = None) -> AssignResult:
        """Assign.

        Args:
            pred_instances: has ``priors`` float (P, 4) xyxy pixels (extra columns are ignored), concatenated
                level after level.
            num_level_priors: number of priors of each level, summing to P.
            gt_instances: has ``bboxes`` float (G, 4) xyxy and ``labels`` int64 (G,).
            gt_instances_ignore: optional, has ``bboxes`` (Gi, 4).

        Returns:
            :class:`AssignResult`: ``gt_inds`` 0 negative, -1 ignored, i + 1 ground truth i; ``max_overlaps`` the
            IoU with the assigned ground truth (``-inf`` where none, as MMDetection); no host-device sync.

        Raises:
            ValueError: ``num_level_priors`` does not sum to the number of priors.
        """
        from torchvision.ops import box_iou
        priors = pred_instances.priors[:, :4]
        gt_bboxes, gt_labels = gt_instances.bboxes, gt_instances.labels
        num_gts, num_priors = gt_bboxes.size(0), priors.size(0)
        if sum(num_level_priors) != num_priors:
            raise ValueError(f'ATSSAssigner: num_level_priors {list(num_level_priors)} sums to '
                             f'{sum(num_level_priors)}, but there are {num_priors} priors')
        gt_inds = priors.new_zeros(num_priors, dtype=torch.long)
        labels = priors.new_full((num_priors,), -1, dtype=torch.long)
        if num_gts == 0 or num_priors == 0:
            return AssignResult(num_gts, gt_inds, priors.new_zeros(num_priors), labels)

        overlaps = box_iou(priors, gt_bboxes)  # (P, G)
        prior_ctr = (priors[:, :2] + priors[:, 2:]) / 2
        gt_ctr = (gt_bboxes[:, :2] + gt_bboxes[:, 2:]) / 2
        distances = torch.cdist(prior_ctr, gt_ctr)  # (P, G)

        ignore = getattr(gt_instances_ignore, 'bboxes', None) if gt_instances_ignore is not None else None
        if self.ignore_iof_thr > 0 and ignore is not None and ignore.numel() > 0:
            ignored = box_iof(priors, ignore).max(dim=1).values > self.ignore_iof_thr
            distances = distances.masked_fill(ignored[:, None], float('inf'))
            gt_inds = gt_inds.masked_fill(ignored, -1)

        # the topk closest priors of every level: (K, G) indices into the P priors (distinct within a column)
        candidate_idxs = []
        start = 0
        for num in num_level_priors:
            k = min(self.topk, num)
            if k > 0:
                candidate_idxs.append(distances[start:start + num].topk(k, dim=0, largest=False).indices + start)
            start += num
        candidate_idxs = torch.cat(candidate_idxs, dim=0)
        candidate_overlaps = overlaps.gather(0, candidate_idxs)  # (K, G)
        threshold = candidate_overlaps.mean(dim=0) + candidate_overlaps.std(dim=0)
        is_pos = candidate_overlaps >= threshold[None, :]

        # the candidate's centre must lie inside its ground truth
        cand_ctr = prior_ctr[candidate_idxs]  # (K, G, 2)
        margins = torch.cat([cand_ctr - gt_bboxes[None, :, :2], gt_bboxes[None, :, 2:] - cand_ctr], dim=-1)
        is_pos &= margins.min(dim=-1).values > 0.01

        # positive candidates keep their IoU, everything else -inf; a prior takes its highest-IoU ground truth
        pos_overlaps = overlaps.new_full((num_priors, num_gts), float('-inf'))
        pos_overlaps.scatter_(0, candidate_idxs, candidate_overlaps.masked_fill(~is_pos, float('-inf')))
        max_overlaps, argmax = pos_overlaps.max(dim=1)
        assigned = max_overlaps != float('-inf')
        gt_inds = torch.where(assigned, argmax + 1, gt_inds)
        labels = torch.where(assigned, gt_labels[argmax], labels)
        return AssignResult(num_gts, gt_inds, max_overlaps, labels)
