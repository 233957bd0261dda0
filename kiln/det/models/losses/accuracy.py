"""Top-k classification accuracy, in percent (MMDetection ``accuracy`` / ``Accuracy``)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from kiln.registry import MODELS


def accuracy(pred: Tensor, target: Tensor, topk: int | Sequence[int] = 1,
             thresh: float | None = None) -> Tensor | list[Tensor]:
    """Percentage of rows whose target is among the ``k`` highest scores.

    Args:
        pred: float (N, C) scores or logits.
        target: int64 (N,) class indices.
        topk: k, or several k.
        thresh: a hit also needs its score > thresh.

    Returns:
        0-dim float tensor in [0, 100] (0 for N == 0), or a list of them for several k.

    Raises:
        ValueError: shapes disagree or k > C.
    """
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    if pred.dim() != 2 or target.shape != pred.shape[:1]:
        raise ValueError(f'accuracy: expected pred (N, C) and target (N,), got {tuple(pred.shape)} and '
                         f'{tuple(target.shape)}')
    maxk = max(ks)
    if maxk > pred.size(1):
        raise ValueError(f'accuracy: top-{maxk} asked for {pred.size(1)} classes')
    if pred.size(0) == 0:
        res = [pred.new_tensor(0.) for _ in ks]
        return res[0] if isinstance(topk, int) else res
    values, labels = pred.topk(maxk, dim=1)
    correct = labels.t().eq(target.view(1, -1).expand(maxk, -1))
    if thresh is not None:
        correct = correct & (values > thresh).t()
    res = [correct[:k].reshape(-1).float().sum() * (100.0 / pred.size(0)) for k in ks]
    return res[0] if isinstance(topk, int) else res


@MODELS.register_module()
class Accuracy(nn.Module):
    """Module form of :func:`accuracy` (``topk``, ``thresh``)."""

    def __init__(self, topk: int | Sequence[int] = (1,), thresh: float | None = None) -> None:
        super().__init__()
        self.topk = topk
        self.thresh = thresh

    def forward(self, pred: Tensor, target: Tensor) -> Tensor | list[Tensor]:
        return accuracy(pred, target, self.topk, self.thresh)


__all__ = ['Accuracy', 'accuracy']
