"""Generalized Focal Loss: quality focal loss and distribution focal loss (Li et al., "Generalized Focal Loss:
Learning Qualified and Distributed Bounding Boxes for Dense Object Detection", NeurIPS 2020)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


@MODELS.register_module()
class QualityFocalLoss(nn.Module):
    """Quality focal loss: sigmoid binary cross-entropy against a soft target (the IoU of the predicted box for
    the ground-truth class, 0 elsewhere), scaled by ``|target - sigmoid(pred)| ** beta``; summed over classes.

    Args:
        use_sigmoid: must be True (as in MMDetection).
        beta: focusing parameter.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplier of the loss.
        activated: must be False (inputs are logits).

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``:
        pred: float (N, C) logits. target: a tuple ``(labels, scores)`` with ``labels`` int64 (N,) in 0..C
        (C = background) and ``scores`` float (N,) in [0, 1] (the quality, e.g. IoU, of positives), or a float
        (N, C) soft target. weight: (N,). avg_factor: divide the summed loss by this instead of averaging.
        Returns a 0-dim tensor, or (N,) for ``'none'``.

    Raises:
        NotImplementedError: ``use_sigmoid=False`` or ``activated=True``.
        ValueError: shape mismatch between ``pred`` and ``target``.
    """

    def __init__(self, use_sigmoid: bool = True, beta: float = 2.0, reduction: str = 'mean',
                 loss_weight: float = 1.0, activated: bool = False) -> None:
        super().__init__()
        if not use_sigmoid:
            raise NotImplementedError('QualityFocalLoss: only use_sigmoid=True is supported')
        if activated:
            raise NotImplementedError('QualityFocalLoss: only logits (activated=False) are supported')
        self.use_sigmoid = use_sigmoid
        self.beta = beta
        self.reduction = check_reduction(reduction, 'QualityFocalLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: tuple[Tensor, Tensor] | Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'QualityFocalLoss')
        if pred.dim() != 2:
            raise ValueError(f'QualityFocalLoss expects pred of shape (N, C), got {tuple(pred.shape)}')
        num_classes = pred.size(1)
        if isinstance(target, (tuple, list)):
            labels, scores = target
            if labels.shape != (pred.size(0),) or scores.shape != (pred.size(0),):
                raise ValueError(f'QualityFocalLoss: labels {tuple(labels.shape)} and scores '
                                 f'{tuple(scores.shape)} must both be ({pred.size(0)},)')
            target = F.one_hot(labels.long(), num_classes + 1)[:, :num_classes] * scores[:, None]
        elif target.shape != pred.shape:
            raise ValueError(f'QualityFocalLoss: target shape {tuple(target.shape)} != pred shape '
                             f'{tuple(pred.shape)}')
        target = target.to(pred.dtype)
        scale = (target - pred.sigmoid()).abs().pow(self.beta)
        loss = (F.binary_cross_entropy_with_logits(pred, target, reduction='none') * scale).sum(dim=1)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class DistributionFocalLoss(nn.Module):
    """Distribution focal loss: cross-entropy of a discretised distance distribution against the two bins around
    the continuous target ``y`` (bins ``floor(y)`` and ``floor(y) + 1``, weighted by the distance to the other).

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplier of the loss.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``:
        pred: float (N, n + 1) logits over the bins 0..n. target: float (N,) distances in bin units, in
        [0, n) (heads clamp them to ``n - 0.01``). weight: (N,). Returns a 0-dim tensor, or (N,) for ``'none'``.

    Raises:
        ValueError: shape mismatch between ``pred`` and ``target``.
        IndexError: (from ``cross_entropy``) a target outside [0, n).
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'DistributionFocalLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'DistributionFocalLoss')
        if pred.dim() != 2 or target.shape != (pred.size(0),):
            raise ValueError(f'DistributionFocalLoss expects pred (N, n + 1) and target (N,), got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        left = target.long()
        right = left + 1
        loss = (F.cross_entropy(pred, left, reduction='none') * (right.to(target.dtype) - target)
                + F.cross_entropy(pred, right, reduction='none') * (target - left.to(target.dtype)))
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
