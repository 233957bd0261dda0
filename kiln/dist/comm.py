"""Collective communication that degrades to identities in a single process.

Tensors are moved to the communication device the backend needs (CUDA for NCCL) and
the results are moved back to the input's device.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist

from .utils import get_backend, get_rank, get_world_size, is_distributed

__all__ = ['all_reduce', 'all_gather', 'all_gather_object', 'broadcast',
           'broadcast_object_list', 'collect_results', 'sync_random_seed']

_REDUCE_OPS = {
    'sum': torch_dist.ReduceOp.SUM,
    'mean': torch_dist.ReduceOp.SUM,
    'max': torch_dist.ReduceOp.MAX,
    'min': torch_dist.ReduceOp.MIN,
    'product': torch_dist.ReduceOp.PRODUCT,
}


def _comm_device() -> torch.device:
    if get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def all_reduce(tensor: torch.Tensor, op: str = 'sum') -> torch.Tensor:
    """Reduce ``tensor`` over all ranks, in place, and return it.

    Args:
        tensor: Any shape; the same shape and dtype on every rank.
        op: ``'sum'``, ``'mean'`` (sum divided by the world size; floating dtypes only),
            ``'max'``, ``'min'`` or ``'product'``.

    Returns:
        ``tensor`` (modified in place). Unchanged when not distributed.

    Raises:
        ValueError: Unknown ``op``.
        TypeError: ``op='mean'`` on an integer tensor.
    """
    if op not in _REDUCE_OPS:
        raise ValueError(f'all_reduce: op must be one of {sorted(_REDUCE_OPS)}, got {op!r}')
    if op == 'mean' and not (tensor.is_floating_point() or tensor.is_complex()):
        raise TypeError(f"all_reduce(op='mean') needs a floating tensor, got dtype {tensor.dtype}")
    if not is_distributed():
        return tensor
    buf = tensor.to(_comm_device())
    torch_dist.all_reduce(buf, op=_REDUCE_OPS[op])
    if op == 'mean':
        buf.div_(get_world_size())
    if buf is not tensor:
        tensor.copy_(buf)
    return tensor


def all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Gather ``tensor`` from every rank.

    Args:
        tensor: Same shape and dtype on every rank.

    Returns:
        ``world_size`` tensors ordered by rank, on ``tensor``'s device; ``[tensor]`` when
        not distributed.
    """
    if not is_distributed():
        return [tensor]
    buf = tensor.to(_comm_device())
    out = [torch.empty_like(buf) for _ in range(get_world_size())]
    torch_dist.all_gather(out, buf)
    return [t.to(tensor.device) for t in out]


def all_gather_object(obj: Any) -> list[Any]:
    """Gather a picklable object from every rank; ``[obj]`` when not distributed."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Copy ``tensor`` from rank ``src`` to every rank, in place; returns ``tensor``."""
    if not is_distributed():
        return tensor
    buf = tensor.to(_comm_device())
    torch_dist.broadcast(buf, src=src)
    if buf is not tensor:
        tensor.copy_(buf)
    return tensor


def broadcast_object_list(object_list: list[Any], src: int = 0) -> list[Any]:
    """Replace the items of ``object_list`` (same length on every rank) by rank ``src``'s.

    The list is modified in place and returned. Unchanged when not distributed.
    """
    if is_distributed():
        device = _comm_device() if get_backend() == 'nccl' else None
        torch_dist.broadcast_object_list(object_list, src=src, device=device)
    return object_list


def collect_results(results: list, size: int, device: str = 'cpu') -> list | None:
    """Gather per-rank result lists into one list in dataset order.

    Kiln's ``DefaultSampler`` gives rank ``r`` the indices ``r, r + W, r + 2W, ...``
    (``W`` = world size), padding the last round with repeated indices so that every
    rank gets the same number of samples. This function interleaves the parts back
    (rank 0's first result, rank 1's first, ..., rank 0's second ...) and truncates to
    ``size``, which drops the padding duplicates.

    Args:
        results: This rank's results, in the order the sampler yielded its indices.
        size: Size of the dataset (number of results wanted).
        device: ``'cpu'`` or ``'gpu'``/``'cuda'``; results are pickled and exchanged
            through the default group either way (the NCCL backend moves the bytes through
            the GPU), so the argument is kept for MMEngine compatibility.

    Returns:
        The ``size`` results on rank 0, ``None`` on the other ranks;
        ``results[:size]`` when not distributed.

    Raises:
        ValueError: Unknown ``device`` or negative ``size``.
    """
    if device not in ('cpu', 'gpu', 'cuda'):
        raise ValueError(f"collect_results: device must be 'cpu', 'gpu' or 'cuda', got {device!r}")
    if size < 0:
        raise ValueError(f'collect_results: size must be >= 0, got {size}')
    if not is_distributed():
        return list(results[:size])
    parts = all_gather_object(list(results))
    if get_rank() != 0:
        return None
    ordered = []
    for i in range(max(len(p) for p in parts)):
        ordered.extend(p[i] for p in parts if i < len(p))
    return ordered[:size]


def sync_random_seed() -> int:
    """A random seed in ``[0, 2**31)`` drawn on rank 0 and shared by every rank.

    Drawn from numpy's global generator (so it is reproducible after the run's seed is
    set, as in MMEngine). Distributed samplers use it so that all ranks shuffle identically.
    """
    seed = int(np.random.randint(2**31))
    if not is_distributed():
        return seed
    t = torch.tensor(seed, dtype=torch.int64)
    broadcast(t, src=0)
    return int(t.item())
