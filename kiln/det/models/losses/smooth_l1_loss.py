"""L1 and smooth-L1 regression losses (Fast R-CNN, Girshick 2015)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def _check(pred: Tensor, target: Tensor, owner: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f'{owner}: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}')


@MODELS.register_module()
class L1Loss(nn.Module):
    """Element-wise ``|pred - target|``; ``forward(pred, target, weight=None, avg_factor=None,
    reduction_override=None)`` with pred/target/weight of the same shape (e.g. (N, 4) box deltas)."""

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'L1Loss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'L1Loss')
        _check(pred, target, 'L1Loss')
        loss = (pred - target).abs()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class SmoothL1Loss(nn.Module):
    """Smooth L1 (Huber-like) loss: ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``.

    Same call signature as :class:`L1Loss`; computed with ``torch.nn.functional.smooth_l1_loss``.
    """

    def __init__(self, beta: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f'SmoothL1Loss beta must be > 0, got {beta}')
        self.beta = beta
        self.reduction = check_reduction(reduction, 'SmoothL1Loss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'SmoothL1Loss')
        _check(pred, target, 'SmoothL1Loss')
        loss = F.smooth_l1_loss(pred, target, reduction='none', beta=self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
