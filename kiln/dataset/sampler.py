"""Samplers that shard a dataset across ranks: ``DefaultSampler`` (epoch-based) and ``InfiniteSampler``.

Reference: MMEngine ``mmengine.dataset.sampler`` (behaviour), re-implemented.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterator, Sized

import torch
from torch.utils.data import Sampler

from kiln.registry import DATA_SAMPLERS

from .seeding import SampleIndex


def _dist_info() -> tuple[int, int]:
    from kiln.dist import get_dist_info
    return get_dist_info()


def sync_random_seed() -> int:
    """A random seed in [0, 2**31), drawn on rank 0 and shared by every rank (``kiln.dist.sync_random_seed``)."""
    from kiln.dist import sync_random_seed as _sync
    return _sync()


@DATA_SAMPLERS.register_module()
class DefaultSampler(Sampler):
    """Epoch-based sampler yielding this rank's share of the dataset indices.

    Each epoch the full index list is shuffled with a ``torch.Generator`` seeded by ``seed + epoch`` (identical
    on every rank), optionally padded by repetition to a multiple of the world size (``round_up``), and rank
    ``r`` takes ``indices[r::world_size]``.

    Args:
        dataset: any sized dataset.
        shuffle: shuffle every epoch.
        seed: base seed; ``None`` draws a random one (shared across ranks).
        round_up: pad so every rank gets ``ceil(len / world_size)`` indices; otherwise ranks may differ by one.

    State: ``state_dict()`` -> ``dict(epoch, seed, shuffle, position)``; ``position`` is how many of this rank's
    indices of the current epoch to skip on the next ``__iter__`` (set it to ``iter_in_epoch * batch_size``
    when resuming mid-epoch, so no data has to be loaded to skip).

    The indices are :class:`~kiln.dataset.seeding.SampleIndex` ints carrying ``(seed, epoch)``, from which
    ``BaseDataset`` seeds each sample's augmentation (independent of the worker that loads it).
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None,
                 round_up: bool = True) -> None:
        rank, world_size = _dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0
        self.round_up = round_up
        self.position = 0
        n = len(dataset)
        if round_up:
            self.num_samples = math.ceil(n / world_size)
            self.total_size = self.num_samples * world_size
        else:
            self.num_samples = math.ceil((n - rank) / world_size)
            self.total_size = n

    def __iter__(self) -> Iterator[int]:
        # A generator: the body (and the reset of ``position``) runs at the first ``next``. DataLoader with
        # workers calls ``iter(sampler)`` twice and discards the first iterator, which must not eat the position.
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if self.round_up and n > 0:
            indices = (indices * (self.total_size // n + 1))[:self.total_size]
        indices = indices[self.rank:self.total_size:self.world_size]
        start, self.position = self.position, 0
        seed, epoch = self.seed, self.epoch
        for i in indices[start:]:
            yield SampleIndex(i, seed, epoch)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use ``seed + epoch`` for the next shuffle (the train loop calls this at the start of every epoch)."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return dict(epoch=self.epoch, seed=self.seed, shuffle=self.shuffle, position=self.position)

    def load_state_dict(self, state: dict) -> None:
        """Restore ``epoch`` and ``seed`` (and ``position``, the number of indices to skip next time)."""
        self.epoch = int(state['epoch'])
        self.seed = int(state['seed'])
        self.shuffle = bool(state.get('shuffle', self.shuffle))
        self.position = int(state.get('position', 0))


@DATA_SAMPLERS.register_module()
class InfiniteSampler(Sampler):
    """Endless sampler for iteration-based training: concatenated permutations, sharded by rank.

    The stream is ``randperm(n) ++ randperm(n) ++ ...`` from one ``torch.Generator`` seeded with ``seed``
    (or ``0, 1, ..., n-1`` repeated without shuffle); rank ``r`` takes every ``world_size``-th element from
    ``r``. ``set_epoch`` is a no-op. Indices are ``SampleIndex`` ints whose ``epoch`` is the pass
    number. ``position`` (in the state dict) skips that many of this rank's indices.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None) -> None:
        self.rank, self.world_size = _dist_info()
        self.dataset = dataset
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError('InfiniteSampler: the dataset is empty, cannot sample from it forever')
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.position = 0

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed)
        seed = self.seed
        for n_pass in itertools.count():
            order = torch.randperm(self.size, generator=g).tolist() if self.shuffle else range(self.size)
            for i in order:
                yield SampleIndex(i, seed, n_pass)

    def __iter__(self) -> Iterator[int]:
        # A generator, so that a discarded ``iter(sampler)`` (DataLoader with workers) keeps ``position``.
        start, self.position = self.position, 0
        stream = itertools.islice(self._infinite_indices(), self.rank, None, self.world_size)
        yield from itertools.islice(stream, start, None)

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Not used: the stream does not depend on the epoch."""

    def state_dict(self) -> dict:
        return dict(seed=self.seed, shuffle=self.shuffle, position=self.position)

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state['seed'])
        self.shuffle = bool(state.get('shuffle', self.shuffle))
        self.position = int(state.get('position', 0))


class _Length:
    """A stand-in 'dataset' of a given length (DefaultSampler only needs ``len``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@DATA_SAMPLERS.register_module()
class RandomSubsetSampler(DefaultSampler):
    """``DefaultSampler`` over a fixed random subset of the dataset (Detectron2's
    ``RandomSubsetTrainingSampler``): train or validate quickly on ``subset_ratio`` of the data while keeping
    the run reproducible.

    The subset is drawn once, from ``subset_seed`` (the same on every rank and across resumes), as
    ``sorted(randperm(len(dataset))[:round(subset_ratio * len)])``; each epoch then shuffles the subset with
    ``seed + epoch`` and shards it like :class:`DefaultSampler`. Resume (``position``), ``set_epoch`` and the
    state dict work as there; the state also records the subset size and seed.

    Config: ``sampler=dict(type='RandomSubsetSampler', subset_ratio=0.1, subset_seed=0, shuffle=True)``.

    Args:
        dataset: any sized dataset.
        subset_ratio: the fraction of the dataset to keep, in (0, 1]; at least one sample is kept.
        subset_seed: the seed of the subset draw (default 0: the same subset in every run).
        shuffle, seed, round_up: see :class:`DefaultSampler`.

    Raises:
        ValueError: ``subset_ratio`` outside (0, 1], or an empty dataset.
    """

    def __init__(self, dataset: Sized, subset_ratio: float, subset_seed: int = 0, shuffle: bool = True,
                 seed: int | None = None, round_up: bool = True) -> None:
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(f'RandomSubsetSampler: subset_ratio must be in (0, 1], got {subset_ratio}')
        n = len(dataset)
        if n == 0:
            raise ValueError('RandomSubsetSampler: the dataset is empty')
        g = torch.Generator()
        g.manual_seed(int(subset_seed))
        size = max(1, round(subset_ratio * n))
        self.subset = sorted(torch.randperm(n, generator=g)[:size].tolist())
        self.subset_ratio = subset_ratio
        self.subset_seed = int(subset_seed)
        super().__init__(_Length(size), shuffle=shuffle, seed=seed, round_up=round_up)
        self.dataset = dataset

    def __iter__(self) -> Iterator[int]:
        subset = self.subset
        inner = self.dataset
        self.dataset = _Length(len(subset))  # DefaultSampler draws positions in the subset
        try:
            positions = super().__iter__()
            first = next(positions, None)
        finally:
            self.dataset = inner
        if first is None:
            return
        yield SampleIndex(subset[first], first.seed, first.epoch)
        for p in positions:
            yield SampleIndex(subset[p], p.seed, p.epoch)

    def state_dict(self) -> dict:
        return dict(super().state_dict(), subset_size=len(self.subset), subset_seed=self.subset_seed)
