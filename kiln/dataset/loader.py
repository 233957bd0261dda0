"""Dataloader building for the data layer: ``build_dataloader`` (MMEngine's dataloader config keys),
``SeededDataLoader`` (per-sample seeding at fetch time, for every map-style dataset) and ``get_sampler``.

Usable without a Runner: ``build_dataloader(dict(dataset=..., sampler=dict(type='DefaultSampler')), seed=0)``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from kiln.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS

from .seeding import SampleIndex, _restore_global_rng, _save_global_rng, global_rng_guard, seed_sample

__all__ = ['SeededDataLoader', 'build_dataloader', 'get_sampler']


class _SeededFetch(Dataset):
    """What the loader's fetcher indexes: seeds the global generators from a :class:`SampleIndex`, then asks
    the wrapped dataset for the sample by its plain ``int`` index. Lives only inside the loader's iterator (and
    its workers); ``loader.dataset`` stays the user's dataset."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _fetch(self, index: Any) -> Any:
        if seed_sample(index):
            index = int(index)
        return self.dataset[index]

    def __getitem__(self, index: Any) -> Any:
        if get_worker_info() is not None:  # a worker's generators only serve data loading
            return self._fetch(index)
        with global_rng_guard():  # the training process: keep the model's random stream untouched
            return self._fetch(index)

    def __getitems__(self, indices: list) -> list:
        """A batch (the fetcher's batched call): the training process saves/restores its generators once."""
        if get_worker_info() is not None:  # a worker's generators only serve data loading
            return self._fetch_all(indices)
        for i in indices:
            if isinstance(i, SampleIndex):
                break
        else:  # no seeded index: the global generators are used as they are
            return [self.dataset[i] for i in indices]
        state = _save_global_rng()
        try:
            return self._fetch_all(indices)
        finally:
            _restore_global_rng(state)

    def _fetch_all(self, indices: list) -> list:
        """``_fetch`` for each index, with the seeding inlined (the per-sample hot path)."""
        dataset = self.dataset
        out = []
        append = out.append
        for index in indices:
            if seed_sample(index):
                index = int(index)
            append(dataset[index])
        return out


class SeededDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` that seeds every sample it fetches from (seed, epoch, index).

    When the sampler yields :class:`~kiln.dataset.seeding.SampleIndex` values (kiln's ``DefaultSampler`` and
    ``InfiniteSampler`` do), Python's ``random``, NumPy's global generator and torch's CPU generator are seeded
    with ``sample_seed(seed, epoch, index)`` right before ``dataset[index]`` runs, in whichever worker (or the
    main process) fetches it, and the dataset receives a plain ``int``. Any map-style dataset works: a kiln
    ``BaseDataset`` or a plain ``torch.utils.data.Dataset`` drawing noise with NumPy / torch. The batches are then
    independent of ``num_workers``, ``persistent_workers``, the order workers run in and of a restart: a resumed
    sampler skips indices (its ``position``) without loading data, and the next samples are the same as in the
    uninterrupted run. With ``num_workers=0`` the generators are restored after each batch, so loading data
    never changes the training process's random stream.

    Indices that are plain ints (another sampler) are fetched as by ``DataLoader``; iterable datasets are not
    touched. ``loader.dataset`` is the dataset given (the seeding lives in the iterator only).
    """

    def _get_iterator(self) -> Any:
        dataset = self.dataset
        if isinstance(dataset, IterableDataset):
            return super()._get_iterator()
        # The iterator (and the workers it starts) take ``loader.dataset`` once, at construction: show them the
        # seeding view for that moment only. ``DataLoader.__setattr__`` forbids reassigning ``dataset``.
        object.__setattr__(self, 'dataset', _SeededFetch(dataset))
        try:
            return super()._get_iterator()
        finally:
            object.__setattr__(self, 'dataset', dataset)


def get_sampler(dataloader: Any) -> Any:
    """The sampler that owns the shuffle of ``dataloader``: ``dataloader.sampler`` if it has ``set_epoch``,
    else ``dataloader.batch_sampler.sampler`` (custom batch samplers), else ``dataloader.sampler`` / None."""
    sampler = getattr(dataloader, 'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        return sampler
    inner = getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None)
    if hasattr(inner, 'set_epoch'):
        return inner
    return sampler


def build_dataloader(cfg: dict | DataLoader, seed: int | None = None, diff_rank_seed: bool = False,
                     name: str = 'dataloader') -> DataLoader:
    """Build a :class:`SeededDataLoader` from an MMEngine-style dataloader config.

    Keys: ``dataset`` (config built from DATASETS, or a Dataset; ``full_init()`` is called when present),
    ``sampler`` (required; built from DATA_SAMPLERS with ``dataset`` and ``seed``, e.g.
    ``dict(type='DefaultSampler', shuffle=True)``), optional ``batch_sampler`` (built from DATA_SAMPLERS with
    ``sampler`` and ``batch_size``), ``collate_fn`` (``dict(type=<name in FUNCTIONS or callable>, **kwargs)``
    or a callable; default ``pseudo_collate``), ``batch_size`` (default 1), ``num_workers`` (default 0),
    ``drop_last``, ``persistent_workers`` (forced off without workers), ``pin_memory`` (default: CUDA
    available), ``worker_init_fn``, ``per_sample_seed`` (kiln's key, default True: seed every sample from
    (sampler seed, epoch, index) when it is fetched, see :class:`SeededDataLoader`; this costs about 20 us per
    sample, plus about 0.1 ms per batch with ``num_workers=0``; False builds a plain ``DataLoader``, whose
    samples then depend on the worker that loads them); any other key goes to ``DataLoader``.

    Args:
        cfg: the config, or a DataLoader (returned unchanged).
        seed: base seed for the sampler and the workers (``kiln.dataset.worker_init_fn`` seeds each worker with
            ``num_workers * rank + worker_id + seed``) and for the loader's own ``generator`` (so creating an
            iterator does not consume the global torch RNG); None leaves all three unseeded.
        diff_rank_seed: the sampler gets seed None (so each rank draws its own) instead of ``seed``.
        name: config name used in error messages (``'train_dataloader'``...).

    Raises:
        KeyError: ``dataset`` or ``sampler`` missing (the message names ``name``).
        TypeError: ``cfg`` is neither a dict nor a DataLoader-like object.
    """
    if not isinstance(cfg, dict):
        if hasattr(cfg, '__iter__'):
            return cfg
        raise TypeError(f'{name} must be a config dict or a DataLoader, got {type(cfg).__name__}')
    cfg = dict(cfg)  # building pops keys from this copy, never from the caller's config
    for key in ('dataset', 'sampler'):
        if key not in cfg:
            hint = " (e.g. sampler=dict(type='DefaultSampler', shuffle=True))" if key == 'sampler' else ''
            raise KeyError(f'{name}: the config has no {key!r}{hint}; got keys {sorted(cfg)}')
    dataset = cfg.pop('dataset')
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()

    sampler = cfg.pop('sampler')
    if isinstance(sampler, dict):
        sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset,
                                                                 seed=None if diff_rank_seed else seed))
    batch_size = cfg.pop('batch_size', 1)
    batch_sampler = cfg.pop('batch_sampler', None)
    if isinstance(batch_sampler, dict):
        batch_sampler = DATA_SAMPLERS.build(batch_sampler,
                                            default_args=dict(sampler=sampler, batch_size=batch_size))

    collate_fn = _build_function(cfg.pop('collate_fn', dict(type='pseudo_collate')), f'{name}.collate_fn')
    num_workers = cfg.pop('num_workers', 0)
    init_fn = cfg.pop('worker_init_fn', None)
    if init_fn is not None:
        init_fn = _build_function(init_fn, f'{name}.worker_init_fn')
    elif seed is not None:
        from kiln.dist import get_rank

        from .utils import worker_init_fn
        init_fn = partial(worker_init_fn, num_workers=num_workers, rank=get_rank(), seed=seed)
    cfg.pop('shuffle', None)  # the sampler decides
    if seed is not None and cfg.get('generator') is None:
        # The loader draws its workers' base seed from this generator instead of the global torch RNG, so
        # starting an epoch (or a validation) does not shift the random stream the model trains with.
        cfg['generator'] = torch.Generator().manual_seed(seed)
    persistent = bool(cfg.pop('persistent_workers', False)) and num_workers > 0
    loader_cls = SeededDataLoader if cfg.pop('per_sample_seed', True) else DataLoader
    pin_memory = cfg.pop('pin_memory', None)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if batch_sampler is not None:
        cfg.pop('drop_last', None)
        return loader_cls(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=num_workers,
                          worker_init_fn=init_fn, persistent_workers=persistent, pin_memory=pin_memory, **cfg)
    return loader_cls(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, worker_init_fn=init_fn, persistent_workers=persistent,
                      pin_memory=pin_memory, **cfg)


def _build_function(cfg: Any, name: str) -> Callable:
    if callable(cfg) and not isinstance(cfg, dict):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{name} must be a callable or dict(type=..., **kwargs), got {cfg!r}")
    cfg = dict(cfg)
    fn = cfg.pop('type')
    if isinstance(fn, str):
        fn = FUNCTIONS.get(fn)
    return partial(fn, **cfg) if cfg else fn
