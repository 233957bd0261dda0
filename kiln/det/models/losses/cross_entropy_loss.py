"""Softmax / sigmoid / mask cross-entropy losses (MMDetection ``CrossEntropyLoss`` semantics)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kiln.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross-entropy on logits, in one of three modes.

    * softmax (default): ``F.cross_entropy``; ``cls_score`` float (N, C), ``label`` int64 (N,); labels equal to
      ``ignore_index`` (default -100) contribute 0.
    * ``use_sigmoid=True``: ``F.binary_cross_entropy_with_logits``; ``cls_score`` (N, C) with int64 labels (N,) in
      0..C (C = background: all-zero target row; labels < 0 or == ``ignore_index`` get weight 0), or any shape
      with a float target of the same shape (targets < 0 or == ``ignore_index`` get weight 0).
    * ``use_mask=True`` (mask heads): ``cls_score`` float (N, C, H, W) mask logits, ``label`` float (N, H, W)
      binary mask targets, and the **third argument** int64 (N,) the class of each RoI, whose channel is
      selected; the loss is the mean binary cross-entropy over all pixels (MMDetection passes the classes in the
      ``weight`` position; so does kiln). Only ``reduction='mean'`` without ``avg_factor``.

    Args:
        use_sigmoid, use_mask: the mode (not both).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        class_weight: per-class weight, length C (softmax), or per-class positive weight (sigmoid).
        ignore_index: label ignored by the softmax and sigmoid modes (None: -100).
        loss_weight: multiplier of the result.
        avg_non_ignore: with ``reduction='mean'`` and no ``avg_factor``, average over non-ignored elements only.

    ``forward(cls_score, label, weight=None, avg_factor=None, reduction_override=None, ignore_index=None)``:
        ``weight`` per-sample (N,) (softmax / sigmoid with labels) or element-wise; returns a 0-dim tensor (or the
        element-wise loss for ``'none'``).

    Raises:
        ValueError: ``use_sigmoid`` and ``use_mask`` together; ``class_weight`` or ``ignore_index`` with
            ``use_mask``; shape mismatch; ``use_mask`` with ``avg_factor`` or a reduction other than mean.
    """

    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False, reduction: str = 'mean',
                 class_weight: Sequence[float] | None = None, ignore_index: int | None = None,
                 loss_weight: float = 1.0, avg_non_ignore: bool = False) -> None:
        super().__init__()
        if use_sigmoid and use_mask:
            raise ValueError('CrossEntropyLoss: use_sigmoid and use_mask are exclusive')
        if use_mask and (class_weight is not None or ignore_index is not None):
            raise ValueError('CrossEntropyLoss(use_mask=True) supports neither class_weight nor ignore_index')
        self.use_sigmoid = use_sigmoid
        self.use_mask = use_mask
        self.reduction = check_reduction(reduction, 'CrossEntropyLoss')
        self.class_weight = list(class_weight) if class_weight is not None else None
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.avg_non_ignore = avg_non_ignore

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None,
                ignore_index: int | None = None) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'CrossEntropyLoss')
        if ignore_index is None:
            ignore_index = self.ignore_index
        ignore_index = -100 if ignore_index is None else ignore_index
        if self.use_mask:
            return self.loss_weight * self._mask(cls_score, label, weight, reduction, avg_factor)
        class_weight = cls_score.new_tensor(self.class_weight) if self.class_weight is not None else None
        if self.use_sigmoid:
            loss, weight, valid = self._binary(cls_score, label, weight, class_weight, ignore_index)
            if avg_factor is None and self.avg_non_ignore and reduction == 'mean':
                avg_factor = valid.sum()
        else:
            if cls_score.dim() != 2 or label.shape != cls_score.shape[:1]:
                raise ValueError(f'CrossEntropyLoss (softmax) expects cls_score (N, C) and labels (N,), got '
                                 f'{tuple(cls_score.shape)} and {tuple(label.shape)}')
            loss = F.cross_entropy(cls_score, label.long(), weight=class_weight, reduction='none',
                                   ignore_index=ignore_index)
            if avg_factor is None and self.avg_non_ignore and reduction == 'mean':
                avg_factor = (label != ignore_index).sum()
            if weight is not None:
                weight = weight.float()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

    @staticmethod
    def _binary(pred: Tensor, label: Tensor, weight: Tensor | None, class_weight: Tensor | None,
                ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
        if pred.dim() != label.dim():
            if pred.dim() != 2 or label.shape != pred.shape[:1]:
                raise ValueError(f'CrossEntropyLoss (sigmoid) expects labels (N,) for cls_score (N, C), got '
                                 f'{tuple(label.shape)} and {tuple(pred.shape)}')
            num_classes = pred.size(1)
            valid = (label >= 0) & (label != ignore_index)
            target = F.one_hot(torch.where(valid & (label < num_classes), label.long(), num_classes),
                               num_classes + 1)[:, :num_classes]
            valid = valid.view(-1, 1).expand_as(pred).float()
            weight = valid if weight is None else weight.view(-1, 1).float() * valid
        else:
            if pred.shape != label.shape:
                raise ValueError(f'CrossEntropyLoss (sigmoid): cls_score {tuple(pred.shape)} and target '
                                 f'{tuple(label.shape)} differ')
            valid = ((label >= 0) & (label != ignore_index)).float()
            target = label
            weight = valid if weight is None else weight.float() * valid
        loss = F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype), pos_weight=class_weight,
                                                  reduction='none')
        return loss, weight, valid

    @staticmethod
    def _mask(pred: Tensor, target: Tensor, label: Tensor | None, reduction: str,
              avg_factor: float | Tensor | None) -> Tensor:
        if reduction != 'mean' or avg_factor is not None:
            raise ValueError('CrossEntropyLoss(use_mask=True) only supports reduction="mean" without avg_factor')
        if label is None:
            raise ValueError('CrossEntropyLoss(use_mask=True) needs the RoI classes int64 (N,) as third argument')
        if pred.dim() != 4 or target.shape != (pred.shape[0], *pred.shape[2:]) or label.shape != pred.shape[:1]:
            raise ValueError(f'CrossEntropyLoss (mask) expects mask_pred (N, C, H, W), targets (N, H, W) and '
                             f'labels (N,), got {tuple(pred.shape)}, {tuple(target.shape)} and {tuple(label.shape)}')
        inds = torch.arange(pred.size(0), dtype=torch.long, device=pred.device)
        return F.binary_cross_entropy_with_logits(pred[inds, label.long()], target.to(pred.dtype),
                                                  reduction='mean')
