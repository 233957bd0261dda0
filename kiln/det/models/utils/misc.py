"""Small helpers shared by the dense heads (MMDetection ``models/utils/misc.py`` counterparts)."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import Tensor


def multi_apply(func: Callable, *args: Any, **kwargs: Any) -> tuple[list, ...]:
    """Apply ``func`` to each group of arguments and transpose the results into a tuple of lists."""
    pfunc = partial(func, **kwargs) if kwargs else func
    return tuple(map(list, zip(*map(pfunc, *args))))


def select_single_mlvl(mlvl_tensors: Sequence[Tensor], batch_id: int, detach: bool = True) -> list[Tensor]:
    """Pick image ``batch_id`` from each level's (N, C, H, W) tensor -> list of (C, H, W)."""
    return [t[batch_id].detach() if detach else t[batch_id] for t in mlvl_tensors]


def unpack_gt_instances(batch_data_samples: Sequence[Any]) -> tuple[list, list, list[dict]]:
    """Split data samples into ``(gt_instances list, ignored_instances list (or None per image), metainfo list)``.

    Raises:
        ValueError: a data sample has no ``gt_instances`` (names the index and ``img_path`` when known).
    """
    gts, ignores, metas = [], [], []
    for i, sample in enumerate(batch_data_samples):
        meta = dict(sample.metainfo)
        if 'gt_instances' not in sample:
            raise ValueError(f'data_samples[{i}] (img_path={meta.get("img_path")!r}) has no gt_instances; the loss '
                             f'needs gt_instances.bboxes (K, 4) and gt_instances.labels (K,)')
        gts.append(sample.gt_instances)
        ignores.append(sample.ignored_instances if 'ignored_instances' in sample else None)
        metas.append(meta)
    return gts, ignores, metas


def filter_scores_and_topk(scores: Tensor, score_thr: float, topk: int,
                           results: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Keep (prior, class) pairs with score > ``score_thr`` and at most the ``topk`` best of them.

    Args:
        scores: float (P, C) class scores.
        topk: maximum kept pairs (<= 0: keep all).
        results: per-prior tensors (P, ...) to index with the kept prior ids.

    Returns:
        ``(scores (K,), labels int64 (K,), prior ids int64 (K,), filtered results)``, sorted by decreasing score;
        exactly tied scores stay in (prior, class) order (MMDetection's unstable sort leaves their order to the
        sort kernel).
    """
    valid = scores > score_thr
    flat = scores[valid]
    idxs = torch.nonzero(valid)  # (M, 2): prior, class
    num = flat.numel() if topk is None or topk <= 0 else min(topk, flat.numel())
    flat, order = flat.sort(descending=True, stable=True)  # ties in (prior, class) order, deterministic
    flat, top = flat[:num], idxs[order[:num]]
    keep, labels = top.unbind(dim=1)
    filtered = {k: v[keep] for k, v in (results or {}).items()}
    return flat, labels, keep, filtered


def reduce_mean(tensor: Tensor) -> Tensor:
    """Average a tensor over distributed ranks (identity when not distributed)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor.div_(dist.get_world_size()), op=dist.ReduceOp.SUM)
    return tensor
