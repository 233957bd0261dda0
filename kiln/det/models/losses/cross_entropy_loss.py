"""Softmax / sigmoid cross-entropy losses (MMDetection ``CrossEntropyLoss`` semantics)."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross-entropy on logits.

    Args:
        use_sigmoid: binary cross-entropy with logits (``F.binary_cross_entropy_with_logits``) instead of softmax
            cross-entropy (``F.cross_entropy``).
        use_mask: not supported (mask heads are not part of kiln).
        reduction, loss_weight: as the other losses.
        class_weight: per-class weight (softmax) or per-class positive weight (sigmoid), length C.
        ignore_index: label ignored by the softmax loss (default -100).
        avg_non_ignore: with ``reduction='mean'`` and no ``avg_factor``, average over non-ignored labels only.

    ``forward(cls_score, label, weight=None, avg_factor=None, reduction_override=None)``:
        softmax: cls_score float (N, C), label int64 (N,). sigmoid: cls_score float (N,) or (N, C) with a float
        target of the same shape, or (N, C) with int64 labels (N,) in 0..C (C = background, all-zero row).
        weight: per-sample (N,) weight. Returns a 0-dim tensor (or per-element for 'none').

    Raises:
        NotImplementedError: ``use_mask=True``.
        ValueError: shape mismatch.
    """

    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False, reduction: str = 'mean',
                 class_weight: Sequence[float] | None = None, ignore_index: int | None = None,
                 loss_weight: float = 1.0, avg_non_ignore: bool = False) -> None:
        super().__init__()
        if use_mask:
            raise NotImplementedError('CrossEntropyLoss: use_mask=True is not supported by kiln')
        self.use_sigmoid = use_sigmoid
        self.reduction = check_reduction(reduction, 'CrossEntropyLoss')
        self.class_weight = list(class_weight) if class_weight is not None else None
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.avg_non_ignore = avg_non_ignore

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'CrossEntropyLoss')
        class_weight = (cls_score.new_tensor(self.class_weight) if self.class_weight is not None else None)
        if self.use_sigmoid:
            loss, weight = self._binary(cls_score, label, weight, class_weight)
        else:
            if cls_score.dim() != 2 or label.shape != cls_score.shape[:1]:
                raise ValueError(f'CrossEntropyLoss (softmax) expects cls_score (N, C) and labels (N,), got '
                                 f'{tuple(cls_score.shape)} and {tuple(label.shape)}')
            ignore_index = -100 if self.ignore_index is None else self.ignore_index
            loss = F.cross_entropy(cls_score, label.long(), weight=class_weight, reduction='none',
                                   ignore_index=ignore_index)
            if avg_factor is None and self.avg_non_ignore and reduction == 'mean':
                avg_factor = (label != ignore_index).sum()
            if weight is not None:
                weight = weight.float()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

    def _binary(self, pred: Tensor, label: Tensor, weight: Tensor | None,
                class_weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if pred.dim() != label.dim():
            if pred.dim() != 2 or label.shape != pred.shape[:1]:
                raise ValueError(f'CrossEntropyLoss (sigmoid) expects labels (N,) for cls_score (N, C), got '
                                 f'{tuple(label.shape)} and {tuple(pred.shape)}')
            num_classes = pred.size(1)
            label = F.one_hot(label.long().clamp(0, num_classes), num_classes + 1)[:, :num_classes]
            if weight is not None:
                weight = weight.view(-1, 1).expand_as(pred)
        elif pred.shape != label.shape:
            raise ValueError(f'CrossEntropyLoss (sigmoid): cls_score {tuple(pred.shape)} and target '
                             f'{tuple(label.shape)} differ')
        if weight is not None:
            weight = weight.float()
        loss = F.binary_cross_entropy_with_logits(pred, label.to(pred.dtype), pos_weight=class_weight,
                                                  reduction='none')
        return loss, weight
