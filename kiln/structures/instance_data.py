"""``InstanceData``: per-instance fields (boxes, labels, scores, masks ...) that all have the same length.

Reference: MMEngine ``mmengine.structures.InstanceData`` / Detectron2 ``Instances`` (behaviour), re-implemented.
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import torch

from .base_data_element import BaseDataElement

IndexType = int | slice | torch.Tensor | np.ndarray | list | str


class InstanceData(BaseDataElement):
    """Data fields of one sample's instances, all of the same length ``N``.

    Every data field must support ``len()`` and indexing: ``torch.Tensor`` (first dim is N), ``np.ndarray``,
    ``list`` / ``tuple``, or any object with ``__len__`` and ``__getitem__``. Typical fields in detection:
    ``bboxes`` float32 (N, 4) xyxy pixels, ``labels`` int64 (N,), ``scores`` float32 (N,).

    Indexing (``inst[index]``) returns a new ``InstanceData`` with the same metainfo:

    * ``int``: a length-1 instance (negative ints count from the end);
    * ``slice``;
    * bool mask (``torch.BoolTensor`` / bool ``np.ndarray`` / list of bools) of length N;
    * integer index tensor / array / list (``torch.long``), any order, repeats allowed;
    * ``str``: the field itself (``inst['bboxes']``).

    Raises:
        ValueError: a data field's length differs from the others (the message names the field and both
            lengths), or a bool mask has the wrong length.
        TypeError: a data field has no length, or the index type is unsupported.
        IndexError: an int index is out of range.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ('_metainfo_fields', '_data_fields'):
            super().__setattr__(name, value)
            return
        if not hasattr(value, '__len__') or (isinstance(value, torch.Tensor) and value.dim() == 0):
            raise TypeError(f'InstanceData field {name!r} must have a length (Tensor with >= 1 dim, ndarray, '
                            f'list, ...), got {type(value).__name__}')
        if len(self._data_fields) > 0 and name not in self._data_fields:
            n = len(self)
            if len(value) != n:
                raise ValueError(f'InstanceData field {name!r} has length {len(value)}, but the existing fields '
                                 f'({", ".join(self.keys())}) have length {n}')
        elif len(self._data_fields) > 1 and name in self._data_fields:
            others = [k for k in self.keys() if k != name]
            n = len(getattr(self, others[0]))
            if len(value) != n:
                raise ValueError(f'InstanceData field {name!r} has length {len(value)}, but the other fields '
                                 f'({", ".join(others)}) have length {n}')
        super().__setattr__(name, value)

    def __len__(self) -> int:
        keys = self.keys()
        return len(getattr(self, keys[0])) if keys else 0

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, item: IndexType) -> Any:
        if isinstance(item, str):
            return getattr(self, item)
        n = len(self)
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            i = int(item)
            if i >= n or i < -n:
                raise IndexError(f'InstanceData index {i} out of range for {n} instances')
            i = i % n
            item = slice(i, i + 1)
        out = type(self)()
        out.set_metainfo(self.metainfo)
        if isinstance(item, slice):
            for k, v in self.items():
                setattr(out, k, v[item])
            return out
        index = self._to_index_tensor(item, n)
        for k, v in self.items():
            setattr(out, k, _take(v, index))
        return out

    @staticmethod
    def _to_index_tensor(item: Any, n: int) -> torch.Tensor:
        if isinstance(item, (list, tuple)):
            item = torch.as_tensor(item) if len(item) else torch.zeros(0, dtype=torch.long)
        elif isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if not isinstance(item, torch.Tensor):
            raise TypeError(f'InstanceData index must be int, slice, str, bool mask or integer index '
                            f'(Tensor / ndarray / list), got {type(item).__name__}')
        if item.dim() != 1:
            raise ValueError(f'InstanceData index tensor must be 1-D, got shape {tuple(item.shape)}')
        if item.dtype == torch.bool:
            if item.numel() != n:
                raise ValueError(f'InstanceData bool mask has length {item.numel()}, expected {n}')
            return item.nonzero(as_tuple=False).flatten()
        if item.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            return item.long()
        raise TypeError(f'InstanceData index tensor must be bool or integer, got {item.dtype}')

    # ------------------------------------------------------------------ concatenation
    @staticmethod
    def cat(instances_list: Sequence['InstanceData']) -> 'InstanceData':
        """Concatenate instances with identical data keys; metainfo is taken from the first.

        Tensors use ``torch.cat`` (dim 0), ndarrays ``np.concatenate``, lists/tuples are chained, and other
        types need a ``cat`` classmethod.

        Raises:
            ValueError: empty input or mismatching keys (names the index and keys).
            TypeError: a field type cannot be concatenated.
        """
        if len(instances_list) == 0:
            raise ValueError('InstanceData.cat got an empty list')
        for i, inst in enumerate(instances_list):
            if not isinstance(inst, InstanceData):
                raise TypeError(f'InstanceData.cat: item {i} is {type(inst).__name__}, expected InstanceData')
        if len(instances_list) == 1:
            return instances_list[0]
        keys = set(instances_list[0].keys())
        for i, inst in enumerate(instances_list[1:], start=1):
            if set(inst.keys()) != keys:
                raise ValueError(f'InstanceData.cat: item {i} has keys {sorted(inst.keys())}, '
                                 f'item 0 has {sorted(keys)}')
        first = instances_list[0]
        out = type(first)()
        out.set_metainfo(first.metainfo)
        for k in first.keys():
            values = [inst.get(k) for inst in instances_list]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                merged: Any = torch.cat(values, dim=0)
            elif isinstance(v0, np.ndarray):
                merged = np.concatenate(values, axis=0)
            elif isinstance(v0, (list, tuple)):
                merged = type(v0)(itertools.chain(*values))
            elif hasattr(v0, 'cat') and callable(v0.cat):
                merged = type(v0).cat(values)
            else:
                raise TypeError(f'InstanceData.cat: field {k!r} of type {type(v0).__name__} cannot be '
                                'concatenated')
            setattr(out, k, merged)
        return out


def _take(value: Any, index: torch.Tensor) -> Any:
    """Select the rows ``index`` (int64 (K,)) of one field."""
    if isinstance(value, torch.Tensor):
        return value[index.to(value.device)]
    if isinstance(value, np.ndarray):
        return value[index.cpu().numpy()]
    if isinstance(value, (list, tuple)):
        return type(value)(value[i] for i in index.tolist())
    return value[index]
