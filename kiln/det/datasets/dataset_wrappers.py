"""``MultiImageMixDataset``: the dataset wrapper that feeds ``Mosaic`` / ``MixUp`` their extra images.

Reference: MMDetection 3.3 ``mmdet.datasets.MultiImageMixDataset`` (behaviour and config keys), re-implemented.
"""
from __future__ import annotations

import collections.abc
import copy
from typing import Any, Callable, Sequence

from kiln.dataset.dataset_wrapper import DatasetWrapper
from kiln.registry import DATASETS, TRANSFORMS


@DATASETS.register_module()
class MultiImageMixDataset(DatasetWrapper):
    """Run a second pipeline, whose transforms may mix several samples, over a dataset's outputs.

    ``dataset[idx]`` (the wrapped dataset's own pipeline, usually ``LoadImageFromFile`` + ``LoadAnnotations``)
    gives ``results``; then, for each transform of ``pipeline`` (skipped when its type is in
    ``skip_type_keys``):

    1. if it has ``get_indexes``, ``transform.get_indexes(self.dataset)`` picks indexes (an int or a list) and
       ``results['mix_results']`` becomes the list of those samples (``dataset[i]``), redrawn up to
       ``max_refetch`` times while one of them is ``None``;
    2. ``transform(copy.deepcopy(results))`` is called, again up to ``max_refetch`` times while it returns
       ``None``; ``mix_results`` is removed afterwards.

    Randomness: kiln's dataloader seeds ``random`` / ``np.random`` / torch from (seed, epoch, index) before it
    calls ``self[index]``, so the picked indexes and every draw of the transforms are a function of
    (seed, epoch, index) and resume exactly.

    Args:
        dataset: the wrapped dataset or its config (built from ``DATASETS``).
        pipeline: transforms or config dicts (built from ``TRANSFORMS``).
        skip_type_keys: transform type names to skip (see :meth:`update_skip_type_keys`, used by YOLOX's
            mode-switch hook to turn Mosaic / MixUp off for the last epochs).
        max_refetch: tries for ``None`` samples / outputs.
        lazy_init: defer ``full_init`` of the wrapped dataset.

    Raises:
        TypeError: a pipeline item is neither a dict nor callable.
        RuntimeError: ``max_refetch`` tries all gave ``None`` (the message names the transform and index).
    """

    def __init__(self, dataset: Any, pipeline: Sequence[dict | Callable], skip_type_keys: Sequence[str] | None = None,
                 max_refetch: int = 15, lazy_init: bool = False) -> None:
        self.pipeline: list[Callable] = []
        self.pipeline_types: list[str] = []
        for i, t in enumerate(pipeline):
            if isinstance(t, dict):
                self.pipeline_types.append(str(t['type']) if isinstance(t.get('type'), str)
                                           else getattr(t.get('type'), '__name__', ''))
                t = TRANSFORMS.build(t)
            elif callable(t):
                self.pipeline_types.append(type(t).__name__)
            else:
                raise TypeError(f'MultiImageMixDataset: pipeline[{i}] must be a dict or callable, '
                                f'got {type(t).__name__}')
            self.pipeline.append(t)
        self._skip_type_keys = list(skip_type_keys) if skip_type_keys is not None else None
        self.max_refetch = int(max_refetch)
        super().__init__(dataset, lazy_init)

    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's record ``idx``."""
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        self.full_init()
        return len(self.dataset)

    def update_skip_type_keys(self, skip_type_keys: Sequence[str]) -> None:
        """Skip the transforms whose type name is in ``skip_type_keys`` from now on."""
        if not all(isinstance(k, str) for k in skip_type_keys):
            raise TypeError(f'skip_type_keys must be strings, got {skip_type_keys!r}')
        self._skip_type_keys = list(skip_type_keys)

    def __getitem__(self, idx: int) -> Any:
        self.full_init()
        results = copy.deepcopy(self.dataset[idx])
        for transform, type_name in zip(self.pipeline, self.pipeline_types):
            if self._skip_type_keys is not None and type_name in self._skip_type_keys:
                continue
            if hasattr(transform, 'get_indexes'):
                for _ in range(self.max_refetch):
                    indexes = transform.get_indexes(self.dataset)
                    if not isinstance(indexes, collections.abc.Sequence):
                        indexes = [indexes]
                    mix_results = [copy.deepcopy(self.dataset[int(i)]) for i in indexes]
                    if None not in mix_results:
                        results['mix_results'] = mix_results
                        break
                else:
                    raise RuntimeError(f'MultiImageMixDataset: the wrapped dataset returned None for the images '
                                       f'{type_name} picked for index {idx}, {self.max_refetch} times')
            for _ in range(self.max_refetch):
                updated = transform(copy.deepcopy(results))
                if updated is not None:
                    results = updated
                    break
            else:
                raise RuntimeError(f'MultiImageMixDataset: {type_name} returned None for index {idx} '
                                   f'{self.max_refetch} times')
            results.pop('mix_results', None)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={type(self.dataset).__name__}, pipeline={self.pipeline_types}, '
                f'skip_type_keys={self._skip_type_keys})')
