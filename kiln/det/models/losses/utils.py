"""Loss reduction helpers shared by the detection losses (MMDetection ``weight_reduce_loss`` semantics)."""
from __future__ import annotations

import torch
from torch import Tensor

_REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, owner: str) -> str:
    """Return ``reduction`` or raise ``ValueError`` naming ``owner`` when it is not none/mean/sum."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {_REDUCTIONS}, got {reduction!r}')
    return reduction


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Reduce an element-wise loss with ``'none'``, ``'mean'`` or ``'sum'``."""
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def weight_reduce_loss(loss: Tensor, weight: Tensor | None = None, reduction: str = 'mean',
                       avg_factor: float | Tensor | None = None) -> Tensor:
    """Multiply an element-wise loss by ``weight`` (broadcast) and reduce it.

    With ``avg_factor`` and ``reduction='mean'`` the result is ``sum(loss * weight) / (avg_factor + eps)``
    (``eps`` = float32 machine epsilon), e.g. a sum over the positives divided by their number.

    Raises:
        ValueError: ``avg_factor`` given with ``reduction='sum'``.
    """
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return reduce_loss(loss, reduction)
    if reduction == 'mean':
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    if reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss
