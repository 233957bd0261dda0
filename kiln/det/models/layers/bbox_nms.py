"""Class-aware NMS helpers with MMCV ``batched_nms`` / MMDetection ``multiclass_nms`` semantics, on
``torchvision.ops.nms``."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    return cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)


def _nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.nms`` visiting boxes in the order of ``scores.sort(descending=True)`` (the order MMCV's
    NMS uses; torchvision itself breaks exact score ties with a stable sort, which may keep a different box)."""
    from torchvision.ops import nms
    order = scores.sort(descending=True)[1]
    return order[nms(boxes[order], scores[order], iou_threshold)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: Mapping[str, Any] | None,
                class_agnostic: bool = False) -> tuple[Tensor, Tensor]:
    """NMS run independently per group (class or level) id.

    Follows MMCV's ``batched_nms``: with fewer than ``split_thr`` (default 10000) boxes, every box is shifted by
    ``id * (boxes.max() + 1)`` so that groups cannot overlap and one ``torchvision.ops.nms`` call does all groups
    (IoUs are then computed on the shifted coordinates, exactly as MMCV does); otherwise NMS runs per group.

    Args:
        boxes: float (N, 4) xyxy pixels.
        scores: float (N,).
        idxs: int64 (N,) group ids.
        nms_cfg: ``dict(type='nms', iou_threshold=..., class_agnostic=False, split_thr=10000)``; ``None`` skips
            NMS and only sorts by score.
        class_agnostic: ignore ``idxs`` (overridden by ``nms_cfg['class_agnostic']``).

    Returns:
        ``(dets float (K, 5) = boxes + score column, keep int64 (K,))`` sorted by decreasing score.

    Raises:
        NotImplementedError: an NMS ``type`` other than ``'nms'``.
        ValueError: missing ``iou_threshold``.
    """
    if nms_cfg is None:
        scores, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores[:, None]], -1), inds
    nms_type = _cfg_get(nms_cfg, 'type', 'nms')
    if nms_type != 'nms':
        raise NotImplementedError(f"nms type {nms_type!r} is not supported (only 'nms')")
    iou_thr = _cfg_get(nms_cfg, 'iou_threshold')
    if iou_thr is None:
        raise ValueError(f'nms config {dict(nms_cfg)} has no iou_threshold')
    class_agnostic = _cfg_get(nms_cfg, 'class_agnostic', class_agnostic)
    if class_agnostic or boxes.numel() == 0:
        boxes_for_nms = boxes
    else:
        offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < _cfg_get(nms_cfg, 'split_thr', 10000):
        keep = _nms(boxes_for_nms, scores, float(iou_thr))
    else:
        total = scores.new_zeros(scores.shape, dtype=torch.bool)
        for group in torch.unique(idxs):
            mask = (idxs == group).nonzero().view(-1)
            total[mask[_nms(boxes_for_nms[mask], scores[mask], float(iou_thr))]] = True
        keep = total.nonzero().view(-1)
        keep = keep[scores[keep].sort(descending=True)[1]]
    return torch.cat([boxes[keep], scores[keep][:, None]], -1), keep


def multiclass_nms(multi_bboxes: Tensor, multi_scores: Tensor, score_thr: float, nms_cfg: Mapping[str, Any] | None,
                   max_num: int = -1, score_factors: Tensor | None = None,
                   return_inds: bool = False) -> tuple[Tensor, ...]:
    """Per-class NMS over R candidate boxes (MMDetection ``multiclass_nms``).

    Args:
        multi_bboxes: float (R, 4) (one box per candidate) or (R, 4 * C) (one box per class) xyxy pixels.
        multi_scores: float (R, C + 1) class probabilities; the last column (background) is ignored.
        score_thr: keep (candidate, class) pairs whose score is > it.
        nms_cfg: see :func:`batched_nms`.
        max_num: keep at most this many detections (<= 0: all).
        score_factors: float (R,) multiplied into the scores before thresholding.
        return_inds: also return the kept pairs' flat indices ``r * C + c``.

    Returns:
        ``(dets float (K, 5) xyxy + score, labels int64 (K,)[, inds int64 (K,)])`` by decreasing score.
    """
    num_classes = multi_scores.size(1) - 1
    if multi_bboxes.shape[1] > 4:
        bboxes = multi_bboxes.view(multi_scores.size(0), -1, 4)
    else:
        bboxes = multi_bboxes[:, None].expand(multi_scores.size(0), num_classes, 4)
    scores = multi_scores[:, :-1]
    labels = torch.arange(num_classes, dtype=torch.long, device=scores.device).view(1, -1).expand_as(scores)
    bboxes, scores, labels = bboxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    if score_factors is not None:
        scores = scores * score_factors.view(-1, 1).expand(-1, num_classes).reshape(-1)
    inds = (scores > score_thr).nonzero().squeeze(1)
    bboxes, scores, labels = bboxes[inds], scores[inds], labels[inds]
    if bboxes.numel() == 0:
        dets = torch.cat([bboxes, scores[:, None]], -1)
        return (dets, labels, inds) if return_inds else (dets, labels)
    dets, keep = batched_nms(bboxes, scores, labels, nms_cfg)
    if max_num > 0:
        dets, keep = dets[:max_num], keep[:max_num]
    return (dets, labels[keep], inds[keep]) if return_inds else (dets, labels[keep])
