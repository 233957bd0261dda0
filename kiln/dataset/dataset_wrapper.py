"""Dataset wrappers: ``ConcatDataset`` and ``RepeatDataset`` (config-buildable, like MMEngine's)."""
from __future__ import annotations

import bisect
import copy
from typing import Any, Sequence

from kiln.registry import DATASETS

from .base_dataset import BaseDataset


def _build(dataset: Any) -> Any:
    if isinstance(dataset, dict):
        return DATASETS.build(dataset)
    return dataset


@DATASETS.register_module()
class ConcatDataset:
    """Several datasets read one after another; ``metainfo`` is the first dataset's.

    Args:
        datasets: datasets or config dicts built from ``DATASETS``.
        lazy_init: defer ``full_init`` of the children.
        ignore_keys: metainfo keys allowed to differ between the datasets.

    Raises:
        ValueError: empty list, or metainfo differs on a key not in ``ignore_keys`` (names the dataset index
            and key).
    """

    def __init__(self, datasets: Sequence[Any], lazy_init: bool = False,
                 ignore_keys: str | Sequence[str] | None = None) -> None:
        if not datasets:
            raise ValueError('ConcatDataset needs at least one dataset')
        self.datasets = [_build(d) for d in datasets]
        ignore = {ignore_keys} if isinstance(ignore_keys, str) else set(ignore_keys or ())
        meta0 = getattr(self.datasets[0], 'metainfo', {})
        for i, d in enumerate(self.datasets[1:], start=1):
            meta = getattr(d, 'metainfo', {})
            for k in set(meta0) | set(meta):
                if k not in ignore and meta0.get(k) != meta.get(k):
                    raise ValueError(f'ConcatDataset: datasets[{i}].metainfo[{k!r}] differs from datasets[0]; '
                                     'pass ignore_keys to allow it')
        self._metainfo = copy.deepcopy(meta0)
        self._fully_initialized = False
        self.cumulative_sizes: list[int] = []
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        total, sizes = 0, []
        for d in self.datasets:
            if hasattr(d, 'full_init'):
                d.full_init()
            total += len(d)
            sizes.append(total)
        self.cumulative_sizes = sizes
        self._fully_initialized = True

    def _locate(self, idx: int) -> tuple[int, int]:
        self.full_init()
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f'ConcatDataset: index {idx} out of range for {n} samples')
        idx %= n
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return d, idx - (self.cumulative_sizes[d - 1] if d > 0 else 0)

    def get_data_info(self, idx: int) -> dict:
        d, i = self._locate(idx)
        return self.datasets[d].get_data_info(i)

    def __len__(self) -> int:
        self.full_init()
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        d, i = self._locate(idx)
        return self.datasets[d][int(i)]


@DATASETS.register_module()
class RepeatDataset:
    """A dataset repeated ``times`` times (useful to make short epochs longer and cut per-epoch overhead)."""

    def __init__(self, dataset: BaseDataset | dict, times: int, lazy_init: bool = False) -> None:
        if int(times) < 1:
            raise ValueError(f'RepeatDataset: times must be >= 1, got {times}')
        self.dataset = _build(dataset)
        self.times = int(times)
        self._metainfo = getattr(self.dataset, 'metainfo', {})
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self._ori_len = len(self.dataset)
        self._fully_initialized = True

    def __len__(self) -> int:
        self.full_init()
        return self.times * self._ori_len

    def _ori(self, idx: int) -> int:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f'RepeatDataset: index {idx} out of range for {n} samples')
        return (idx % n) % self._ori_len

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self._ori(idx))

    def __getitem__(self, idx: int) -> Any:
        return self.dataset[int(self._ori(idx))]
