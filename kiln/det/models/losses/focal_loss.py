"""Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


@MODELS.register_module()
class FocalLoss(nn.Module):
    """Focal loss on sigmoid class scores, computed by ``torchvision.ops.sigmoid_focal_loss``.

    Args:
        use_sigmoid: must be True (only the sigmoid form is provided, as in MMDetection).
        gamma: focusing parameter.
        alpha: weight of the positive term (1 - alpha for negatives); a negative value disables it.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplier of the loss.
        activated: must be False (inputs are logits).

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``:
        pred: float (N, C) logits. target: int64 (N,) class indices in 0..C, where C means background, or a
        float (N, C) one-hot / soft target. weight: (N,) or (N, C). avg_factor: divide the summed loss by this
        (e.g. the number of positives) instead of averaging. Returns a 0-dim tensor (or (N, C) for 'none').

    Raises:
        NotImplementedError: ``use_sigmoid=False`` or ``activated=True``.
        ValueError: shape mismatch between ``pred`` and ``target``/``weight``.
    """

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25,
                 reduction: str = 'mean', loss_weight: float = 1.0, activated: bool = False) -> None:
        super().__init__()
        if not use_sigmoid:
            raise NotImplementedError('FocalLoss: only use_sigmoid=True is supported')
        if activated:
            raise NotImplementedError('FocalLoss: only logits (activated=False) are supported')
        self.use_sigmoid = use_sigmoid
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = check_reduction(reduction, 'FocalLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        from torchvision.ops import sigmoid_focal_loss
        reduction = check_reduction(reduction_override or self.reduction, 'FocalLoss')
        if pred.dim() != 2:
            raise ValueError(f'FocalLoss expects pred of shape (N, C), got {tuple(pred.shape)}')
        num_classes = pred.size(1)
        if target.dim() == 1:
            if target.numel() != pred.size(0):
                raise ValueError(f'FocalLoss: {target.numel()} targets for {pred.size(0)} predictions')
            # one-hot in pred's dtype directly (row r gets 1 at column target[r], none for background C): one
            # float (N, C) buffer instead of an int64 (N, C + 1) one-hot, a slice and a cast
            target = target.long()
            onehot = torch.zeros_like(pred)
            onehot.scatter_(1, target.clamp(max=num_classes - 1)[:, None],
                            (target < num_classes).to(pred.dtype)[:, None])
            target = onehot
        elif target.shape != pred.shape:
            raise ValueError(f'FocalLoss: target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}')
        loss = sigmoid_focal_loss(pred, target.to(pred.dtype), alpha=self.alpha, gamma=self.gamma,
                                  reduction='none')
        if weight is not None:
            if weight.dim() == 1:
                if weight.numel() != pred.size(0):
                    raise ValueError(f'FocalLoss: weight has {weight.numel()} entries for {pred.size(0)} rows')
                if reduction != 'none' and avg_factor is not None:
                    # a per-row weight of a summed loss: weight the (N,) row sums, not every (N, C) element
                    return self.loss_weight * weight_reduce_loss(loss.sum(1), weight, reduction, avg_factor)
                weight = weight.view(-1, 1)
            elif weight.shape != pred.shape:
                raise ValueError(f'FocalLoss: weight shape {tuple(weight.shape)} does not match {tuple(pred.shape)}')
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
