"""``Compose`` (a pipeline of transforms) and ``BaseTransform``."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Callable, Sequence


class BaseTransform(metaclass=ABCMeta):
    """Base class of data transforms: implement ``transform(results) -> dict | None``.

    ``results`` is the dict a dataset record becomes as it goes through the pipeline; returning ``None``
    drops the sample (``BaseDataset`` then refetches another index in train mode).
    """

    def __call__(self, results: dict) -> dict | None:
        return self.transform(results)

    @abstractmethod
    def transform(self, results: dict) -> dict | None:
        """Transform ``results`` and return it (or a new dict), or ``None`` to drop the sample."""

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class Compose:
    """Apply transforms in order; stop and return ``None`` as soon as one returns ``None``.

    Args:
        transforms: callables ``results -> results | None`` or config dicts built from ``TRANSFORMS``
            (``dict(type='LoadImageFromFile')``). ``None`` means an empty pipeline.

    Raises:
        TypeError: an item is neither a dict nor callable (the message gives its position).
    """

    def __init__(self, transforms: Sequence[dict | Callable] | dict | Callable | None = None) -> None:
        if transforms is None:
            transforms = []
        elif isinstance(transforms, dict) or callable(transforms):
            transforms = [transforms]
        self.transforms: list[Callable] = []
        for i, t in enumerate(transforms):
            if isinstance(t, dict):
                from kiln.registry import TRANSFORMS
                t = TRANSFORMS.build(t)
            if not callable(t):
                raise TypeError(f'pipeline[{i}] must be a callable or a config dict, got {type(t).__name__}')
            self.transforms.append(t)

    def __call__(self, data: dict) -> Any:
        for t in self.transforms:
            data = t(data)
            if data is None:
                return None
        return data

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = ''.join(f'\n    {t!r},' for t in self.transforms)
        return f'Compose([{inner}\n])' if inner else 'Compose([])'
