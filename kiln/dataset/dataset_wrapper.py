"""Dataset wrappers: ``ConcatDataset``, ``RepeatDataset``, ``ClassBalancedDataset`` (config-buildable, like
MMEngine's), and ``DatasetWrapper``, the base of wrappers around one dataset."""
from __future__ import annotations

import bisect
import copy
import math
from typing import Any, Sequence

from kiln.registry import DATASETS

from .base_dataset import BaseDataset


def _build(dataset: Any) -> Any:
    if isinstance(dataset, dict):
        return DATASETS.build(dataset)
    return dataset


class DatasetWrapper:
    """Base of the wrappers around one dataset: builds ``dataset`` from a config, exposes its ``metainfo`` and
    initialises it once (``full_init``, which runs ``_init_wrapper`` after the wrapped dataset's own
    initialisation; subclasses compute their index maps there).

    Args:
        dataset: a dataset or a config dict built from ``DATASETS``.
        lazy_init: defer ``full_init`` until first use.
    """

    def __init__(self, dataset: Any, lazy_init: bool = False) -> None:
        self.dataset = _build(dataset)
        self._metainfo = getattr(self.dataset, 'metainfo', {})
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information (a deep copy)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Initialise the wrapped dataset, then this wrapper (idempotent)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self._init_wrapper()
        self._fully_initialized = True

    def _init_wrapper(self) -> None:
        """Wrapper-specific initialisation, after the wrapped dataset's."""


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
class RepeatDataset(DatasetWrapper):
    """A dataset repeated ``times`` times (useful to make short epochs longer and cut per-epoch overhead)."""

    def __init__(self, dataset: BaseDataset | dict, times: int, lazy_init: bool = False) -> None:
        if int(times) < 1:
            raise ValueError(f'RepeatDataset: times must be >= 1, got {times}')
        self.times = int(times)
        super().__init__(dataset, lazy_init)

    def _init_wrapper(self) -> None:
        self._ori_len = len(self.dataset)

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


@DATASETS.register_module()
class ClassBalancedDataset(DatasetWrapper):
    """Repeat the images of rare classes: repeat factor sampling (Gupta et al., "LVIS: A Dataset for Large
    Vocabulary Instance Segmentation", CVPR 2019), as MMEngine's ``ClassBalancedDataset``.

    With ``f(c)`` the fraction of images that contain class ``c``, the class repeat factor is
    ``r(c) = max(1, sqrt(oversample_thr / f(c)))``, an image's is the largest ``r(c)`` over its classes (1 for
    an image without any), and the image appears ``ceil(r(image))`` times per epoch.

    Args:
        dataset: a dataset (or its config) with ``get_cat_ids(idx) -> list[int]`` (detection datasets have it).
        oversample_thr: the frequency below which a class is oversampled (e.g. 1e-3).
        lazy_init: defer computing the repeat factors until first use.

    Attributes:
        repeat_indices: for every index of this dataset, the index in ``dataset``.

    Raises:
        TypeError: ``dataset`` has no ``get_cat_ids``.
        ValueError: ``oversample_thr`` is not positive.
    """

    def __init__(self, dataset: BaseDataset | dict, oversample_thr: float, lazy_init: bool = False) -> None:
        if not oversample_thr > 0:
            raise ValueError(f'ClassBalancedDataset: oversample_thr must be > 0, got {oversample_thr}')
        built = _build(dataset)
        if not hasattr(built, 'get_cat_ids'):
            raise TypeError(f'ClassBalancedDataset: {type(built).__name__} has no get_cat_ids(idx), '
                            'which gives the classes of each sample')
        self.oversample_thr = float(oversample_thr)
        super().__init__(built, lazy_init)

    def _init_wrapper(self) -> None:
        self.repeat_factors = self._repeat_factors()
        self.repeat_indices = [i for i, r in enumerate(self.repeat_factors) for _ in range(math.ceil(r))]

    def _repeat_factors(self) -> list[float]:
        n = len(self.dataset)
        cats = [set(self.dataset.get_cat_ids(i)) for i in range(n)]
        freq: dict[int, float] = {}
        for c_set in cats:
            for c in c_set:
                freq[c] = freq.get(c, 0.0) + 1.0
        class_repeat = {c: max(1.0, math.sqrt(self.oversample_thr / (v / n))) for c, v in freq.items()}
        return [max((class_repeat[c] for c in c_set), default=1.0) for c_set in cats]

    def __len__(self) -> int:
        self.full_init()
        return len(self.repeat_indices)

    def _ori(self, idx: int) -> int:
        self.full_init()
        return self.repeat_indices[idx]

    def get_cat_ids(self, idx: int) -> list[int]:
        return self.dataset.get_cat_ids(self._ori(idx))

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self._ori(idx))

    def __getitem__(self, idx: int) -> Any:
        return self.dataset[int(self._ori(idx))]
