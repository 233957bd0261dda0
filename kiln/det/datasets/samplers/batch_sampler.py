"""``AspectRatioBatchSampler``: batches of images that are all landscape or all portrait (less padding).

Reference: MMDetection 3.x ``mmdet.datasets.samplers.AspectRatioBatchSampler`` (behaviour), re-implemented.
"""
from __future__ import annotations

from typing import Iterator

from torch.utils.data import BatchSampler, Sampler

from kiln.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class AspectRatioBatchSampler(BatchSampler):
    """Group the indices of ``sampler`` into two buckets, ``width < height`` and ``width >= height`` (sizes from
    ``dataset.get_data_info(i)``), and yield a bucket as a batch whenever it holds ``batch_size`` indices. At
    the end of the pass the leftovers of both buckets are merged (portrait first) and yielded in batches of
    ``batch_size``; a last incomplete batch is dropped when ``drop_last``.

    Config (MMDetection's stock data configs)::

        train_dataloader = dict(batch_size=2, sampler=dict(type='DefaultSampler', shuffle=True),
                                batch_sampler=dict(type='AspectRatioBatchSampler'), ...)

    Exact resume: a pass first computes every batch from the inner sampler's full order (indices only, no data
    is loaded), then skips ``sampler.position // batch_size`` batches: the train loop resumes mid-epoch by
    setting the inner sampler's ``position`` to ``iterations done * batch_size``, and this sampler turns it
    back into a number of batches, so a resumed epoch yields exactly the batches the interrupted one had left.

    Args:
        sampler: the index sampler (e.g. ``DefaultSampler``); its ``dataset`` must provide
            ``get_data_info(i)['width' / 'height']``.
        batch_size: images per batch (>= 1).
        drop_last: drop the last incomplete batch.

    Raises:
        TypeError: ``sampler`` is not a Sampler.
        ValueError: ``batch_size`` < 1.
        KeyError: (while iterating) a record has no ``width`` / ``height`` (the index is named).
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if not isinstance(sampler, Sampler):
            raise TypeError(f'AspectRatioBatchSampler: sampler must be a torch Sampler, got {type(sampler).__name__}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'AspectRatioBatchSampler: batch_size must be a positive int, got {batch_size!r}')
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def _is_portrait(self, idx: int) -> bool:
        info = self.sampler.dataset.get_data_info(int(idx))
        try:
            return info['width'] < info['height']
        except KeyError:
            raise KeyError(f'AspectRatioBatchSampler: record {int(idx)} has no width/height '
                           f'(keys {sorted(info)})') from None

    def _batches(self) -> list[list[int]]:
        buckets: tuple[list, list] = ([], [])
        batches = []
        for idx in self.sampler:
            bucket = buckets[0 if self._is_portrait(idx) else 1]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                batches.append(bucket[:])
                bucket.clear()
        left = buckets[0] + buckets[1]
        for start in range(0, len(left), self.batch_size):
            chunk = left[start:start + self.batch_size]
            if len(chunk) == self.batch_size or not self.drop_last:
                batches.append(chunk)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        skip = getattr(self.sampler, 'position', 0) // self.batch_size
        if skip:
            self.sampler.position = 0  # walk the whole pass, then skip whole batches
        yield from self._batches()[skip:]

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
