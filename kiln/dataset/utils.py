"""Collate functions and the dataloader worker seeding function."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data._utils.collate import default_collate as _torch_default_collate

from kiln.registry import FUNCTIONS
from kiln.structures import BaseDataElement


def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` in a dataloader worker with ``num_workers * rank + worker_id +
    seed``, so every worker of every rank draws a different, reproducible stream.

    Use with ``functools.partial(worker_init_fn, num_workers=n, rank=r, seed=s)`` as ``worker_init_fn``.
    """
    worker_seed = (num_workers * rank + worker_id + seed) % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


def _check_same_length(batch: Sequence[Sequence], collate: str) -> None:
    n = len(batch[0])
    for i, item in enumerate(batch):
        if len(item) != n:
            raise RuntimeError(f'{collate}: batch item {i} has {len(item)} elements, item 0 has {n}; every '
                               'sample in a batch must have the same structure')


@FUNCTIONS.register_module()
def pseudo_collate(data_batch: Sequence) -> Any:
    """Transpose a list of samples into one batch without stacking anything.

    A list of dicts becomes a dict of lists, a list of tuples/lists a list of lists, recursively; leaves
    (tensors, arrays, data elements, numbers, strings) stay in Python lists. E.g.
    ``[dict(inputs=t1, data_samples=s1), dict(inputs=t2, data_samples=s2)]`` ->
    ``dict(inputs=[t1, t2], data_samples=[s1, s2])``. Images of different sizes can thus be batched; the
    model's data preprocessor pads and stacks them.
    """
    item = data_batch[0]
    if isinstance(item, (str, bytes)):
        return list(data_batch)
    if isinstance(item, tuple) and hasattr(item, '_fields'):  # namedtuple
        return type(item)(*(pseudo_collate(s) for s in zip(*data_batch)))
    if isinstance(item, Sequence) and not isinstance(item, BaseDataElement):
        return _collate_sequences(data_batch, pseudo_collate)
    if isinstance(item, Mapping):
        return type(item)({k: pseudo_collate([d[k] for d in data_batch]) for k in item})
    return list(data_batch)


def _collate_sequences(data_batch: Sequence, collate: Any) -> Any:
    """Transpose a batch of equal-length sequences and collate each position with ``collate``; a tuple batch
    gives a list (as torch does), other sequence types are rebuilt when their constructor takes a list."""
    _check_same_length(data_batch, collate.__name__)
    transposed = [collate(list(s)) for s in zip(*data_batch)]
    if isinstance(data_batch[0], tuple):
        return transposed
    try:
        return type(data_batch[0])(transposed)
    except TypeError:
        return transposed


@FUNCTIONS.register_module()
def default_collate(data_batch: Sequence) -> Any:
    """Like ``torch.utils.data.default_collate`` (tensors / arrays / numbers are stacked into tensors) but data
    elements, strings and bytes stay lists, and dicts / sequences are transposed as in ``pseudo_collate``.

    Raises:
        RuntimeError: tensors of different shapes (from ``torch.stack``), or samples of different structure.
    """
    item = data_batch[0]
    if isinstance(item, (BaseDataElement, str, bytes)):
        return list(data_batch)
    if isinstance(item, tuple) and hasattr(item, '_fields'):
        return type(item)(*(default_collate(s) for s in zip(*data_batch)))
    if isinstance(item, Sequence):
        return _collate_sequences(data_batch, default_collate)
    if isinstance(item, Mapping):
        return type(item)({k: default_collate([d[k] for d in data_batch]) for k in item})
    return _torch_default_collate(data_batch)
