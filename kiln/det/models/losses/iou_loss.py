"""IoU-based box regression losses (UnitBox: Yu et al. 2016; GIoU: Rezatofighi et al., CVPR 2019)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of row-aligned box pairs: float (..., 4) xyxy, (..., 4) xyxy -> (...,). Union is clamped to ``eps``."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    union = (area1 + area2 - overlap).clamp(min=eps)
    return overlap / union


def _check(pred: Tensor, target: Tensor, weight: Tensor | None, owner: str) -> Tensor | None:
    if pred.shape != target.shape or pred.shape[-1:] != (4,):
        raise ValueError(f'{owner}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be '
                         f'(N, 4) xyxy boxes')
    if weight is not None and weight.dim() > 1:
        weight = weight.mean(-1)
    return weight


@MODELS.register_module()
class IoULoss(nn.Module):
    """IoU loss between predicted and target xyxy boxes (pixels), row by row.

    Args:
        linear: deprecated alias of ``mode='linear'``.
        eps: lower clamp of the IoU (and of the union).
        reduction, loss_weight: as the other losses.
        mode: ``'log'`` (-ln IoU, UnitBox / FCOS), ``'linear'`` (1 - IoU) or ``'square'`` (1 - IoU^2).

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``: pred/target float (N, 4);
    weight (N,) (or (N, 4), averaged over the last dim). Returns a 0-dim tensor (or (N,) for 'none').
    """

    def __init__(self, linear: bool = False, eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0,
                 mode: str = 'log') -> None:
        super().__init__()
        if mode not in ('log', 'linear', 'square'):
            raise ValueError(f"IoULoss mode must be 'log', 'linear' or 'square', got {mode!r}")
        self.mode = 'linear' if linear else mode
        self.eps = eps
        self.reduction = check_reduction(reduction, 'IoULoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'IoULoss')
        weight = _check(pred, target, weight, 'IoULoss')
        ious = aligned_box_iou(pred, target, self.eps).clamp(min=self.eps)
        if self.mode == 'log':
            loss = -ious.log()
        elif self.mode == 'linear':
            loss = 1 - ious
        else:
            loss = 1 - ious ** 2
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class GIoULoss(nn.Module):
    """Generalised IoU loss ``1 - GIoU`` via ``torchvision.ops.generalized_box_iou_loss``.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``: pred/target float (N, 4)
    xyxy; weight (N,) or (N, 4). Returns a 0-dim tensor (or (N,) for 'none').
    """

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.reduction = check_reduction(reduction, 'GIoULoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        from torchvision.ops import generalized_box_iou_loss
        reduction = check_reduction(reduction_override or self.reduction, 'GIoULoss')
        weight = _check(pred, target, weight, 'GIoULoss')
        loss = generalized_box_iou_loss(pred, target, reduction='none', eps=self.eps)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
