"""Dataloader building for the data layer: ``build_dataloader`` (MMEngine's dataloader config keys),
``SeededDataLoader`` (per-sample seeding at fetch time, for every map-style dataset) and ``get_sampler``.

Usable without a Runner: ``build_dataloader(dict(dataset=..., sampler=dict(type='DefaultSampler')), seed=0)``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import pickle
import warnings

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter, _SingleProcessDataLoaderIter

from kiln.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS

from .seeding import SampleIndex, SeedPlan, fetch_batch, global_rng_guard, seed_sample

__all__ = ['BadSampleWarning', 'SeededDataLoader', 'build_dataloader', 'get_sampler']


class BadSampleWarning(UserWarning):
    """A dataset skipped a sample it could not load and loaded another in its place (e.g. a detection dataset
    with ``on_bad_sample='warn'`` meeting an unreadable image). :class:`SeededDataLoader` counts these per epoch."""


# ----------------------------------------------------------------------------------- warnings side channel
# Warnings raised while samples are fetched (in a dataloader worker or in the training process) are recorded
# with the batch, carried to the training process with it, and logged there through the running Runner's
# logger, so that they reach the run's log file and not only the worker's stderr.
def _picklable_category(category: type) -> type:
    try:
        pickle.dumps(category)
        return category
    except Exception:  # noqa: BLE001  (a category defined in a local scope)
        return UserWarning


def _notes(caught: list) -> list[tuple]:
    """``(category, message, filename, lineno)`` of recorded warnings (what crosses the worker boundary)."""
    return [(_picklable_category(w.category), str(w.message), w.filename, w.lineno) for w in caught]


class _NotedSamples(list):
    """The samples of one batch (what the collate function receives) and the warnings raised loading them."""

    notes: list = []


class _NotedBatch:
    """A collated batch travelling with the warnings raised while its samples were loaded; unwrapped by the
    loader's iterator in the training process before anyone sees the batch."""

    __slots__ = ('batch', 'notes')

    def __init__(self, batch: Any, notes: list) -> None:
        self.batch = batch
        self.notes = notes

    def pin_memory(self) -> '_NotedBatch':  # called by the loader's pin-memory thread
        from torch.utils.data._utils.pin_memory import pin_memory
        return _NotedBatch(pin_memory(self.batch), self.notes)


class _NotedCollate:
    """The user's collate function, keeping the warnings of the samples with the collated batch."""

    def __init__(self, collate_fn: Callable) -> None:
        self.collate_fn = collate_fn

    def __call__(self, data: Any) -> Any:
        if type(data) is _NotedSamples:
            return _NotedBatch(self.collate_fn(list(data)), data.notes)
        if type(data) is _NotedBatch:  # one sample (batch_size=None)
            return _NotedBatch(self.collate_fn(data.batch), data.notes)
        return self.collate_fn(data)


def _report_notes(notes: list) -> None:
    """Log data-loading warnings through the running Runner's logger (console and log file); without a
    running Runner, issue them again as warnings of the training process."""
    from kiln.logging.current import get_current_runner
    logger = getattr(get_current_runner(), 'logger', None)
    for category, message, filename, lineno in notes:
        if logger is not None:
            logger.warning(f'data loading: {message}')
        else:
            warnings.warn_explicit(message, category, filename, lineno)


class _NotesIterMixin:
    """Unwraps :class:`_NotedBatch`, reports its warnings, and at the end of an epoch (the sampler exhausted)
    logs one summary with the counts."""

    def _next_data(self) -> Any:
        try:
            data = super()._next_data()  # type: ignore[misc]
        except StopIteration:
            self._summarise()
            raise
        if type(data) is _NotedBatch:
            notes = data.notes
            data = data.batch
            self._skipped = getattr(self, '_skipped', 0) + sum(issubclass(n[0], BadSampleWarning) for n in notes)
            self._warned = getattr(self, '_warned', 0) + len(notes)
            seen = self.__dict__.setdefault('_seen', set())
            fresh = [n for n in notes if n[1] not in seen]  # the same message once per pass (no log flood)
            seen.update(n[1] for n in fresh)
            _report_notes(fresh)
        return data

    def _summarise(self) -> None:
        skipped, warned = getattr(self, '_skipped', 0), getattr(self, '_warned', 0)
        distinct = len(getattr(self, '_seen', ()))
        self._skipped = self._warned = 0
        self._seen = set()
        if warned:
            dataset = getattr(self._dataset, 'dataset', self._dataset)  # type: ignore[attr-defined]
            repeats = f' ({distinct} distinct, each logged once)' if distinct < warned else ''
            _report_notes([(UserWarning, f'{type(dataset).__name__}: this pass over the data raised {warned} '
                                         f'data warning(s){repeats}; {skipped} bad sample(s) were skipped and '
                                         'replaced by other samples (see the warnings above)', __file__, 0)])


class _SingleProcessNotesIter(_NotesIterMixin, _SingleProcessDataLoaderIter):
    pass


class _MultiProcessingNotesIter(_NotesIterMixin, _MultiProcessingDataLoaderIter):
    pass


class _SeededFetch(Dataset):
    """What the loader's fetcher indexes: seeds the global generators from a :class:`SampleIndex`, then asks
    the wrapped dataset for the sample by its plain ``int`` index. Lives only inside the loader's iterator (and
    its workers); ``loader.dataset`` stays the user's dataset."""

    def __init__(self, dataset: Any, plan: SeedPlan | None = None) -> None:
        self.dataset = dataset
        self.plan = plan if plan is not None else SeedPlan()  # which generators samples draw from (shared)

    def __len__(self) -> int:
        return len(self.dataset)

    def _fetch(self, index: Any) -> Any:
        if seed_sample(index):
            index = int(index)
        return self.dataset[index]

    def __getitem__(self, index: Any) -> Any:
        """One sample (``batch_size=None``); warnings raised loading it travel with it (see ``_NotedBatch``)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', BadSampleWarning)
            if get_worker_info() is not None:  # a worker's generators only serve data loading
                sample = self._fetch(index)
            else:
                with global_rng_guard():  # the training process: keep the model's random stream untouched
                    sample = self._fetch(index)
        return _NotedBatch(sample, _notes(caught)) if caught else sample

    def __getitems__(self, indices: list) -> list:
        """A batch (the fetcher's batched call); warnings raised loading it are recorded with the samples (one
        ``catch_warnings`` per batch: the filters in force decide what is recorded, as they decide what is
        shown, so with the ``'default'`` action one warning repeated within a batch is recorded once;
        :class:`BadSampleWarning` is always recorded, every skip counts)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', BadSampleWarning)  # every skip is counted, even two in one batch
            samples = self._getitems(indices, caught)
        if not caught:
            return samples
        noted = _NotedSamples(samples)
        noted.notes = _notes(caught)
        return noted

    def _getitems(self, indices: list, caught: list | None = None) -> list:
        """The batch through :func:`~kiln.dataset.seeding.fetch_batch` (the training process restores its
        generators after the batch; a worker's generators only serve data loading)."""
        seeded = sum(isinstance(i, SampleIndex) for i in indices)
        if seeded == len(indices):
            return fetch_batch(self.dataset, indices, self.plan, get_worker_info() is None, caught)
        if not seeded:  # no seeded index (another sampler): the global generators are used as they are
            return [self.dataset[i] for i in indices]
        if get_worker_info() is not None:  # a mix: seed those that carry a seed
            return [self._fetch(i) for i in indices]
        with global_rng_guard():
            return [self._fetch(i) for i in indices]


class SeededDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` that seeds every sample it fetches from (seed, epoch, index).

    When the sampler yields :class:`~kiln.dataset.seeding.SampleIndex` values (kiln's ``DefaultSampler`` and
    ``InfiniteSampler`` do), Python's ``random``, NumPy's global generator and torch's CPU generator are seeded
    with ``sample_seed(seed, epoch, index)`` right before ``dataset[index]`` runs (Python's and NumPy's only once
    a sample of this loader was seen drawing from them, which gives the same samples: see
    :func:`kiln.dataset.seeding.fetch_batch`), in whichever worker (or the
    main process) fetches it, and the dataset receives a plain ``int``. Any map-style dataset works: a kiln
    ``BaseDataset`` or a plain ``torch.utils.data.Dataset`` drawing noise with NumPy / torch. The batches are then
    independent of ``num_workers``, ``persistent_workers``, the order workers run in and of a restart: a resumed
    sampler skips indices (its ``position``) without loading data, and the next samples are the same as in the
    uninterrupted run. With ``num_workers=0`` the generators are restored after each batch, so loading data
    never changes the training process's random stream.

    Warnings raised while samples are loaded (a truncated JPEG decoded leniently, a bad sample skipped with
    :class:`BadSampleWarning`...) travel with their batch from the worker to the training process and are logged
    there through the running Runner's logger (``data loading: <message>``, in the console and the log file)
    when the batch arrives (each distinct message once per pass over the data); without a running Runner they
    are issued again as warnings of the training process. When the sampler is exhausted (the end of an epoch),
    one summary line gives the counts of that pass.

    Indices that are plain ints (another sampler) are fetched as by ``DataLoader``; iterable datasets are not
    touched. ``loader.dataset`` is the dataset given (the seeding lives in the iterator only).
    """

    def _get_iterator(self) -> Any:
        dataset = self.dataset
        if isinstance(dataset, IterableDataset):
            return super()._get_iterator()
        # The iterator (and the workers it starts) take ``loader.dataset`` once, at construction: show them the
        # seeding view for that moment only. ``DataLoader.__setattr__`` forbids reassigning ``dataset``.
        # The collate function is wrapped likewise, so that the warnings raised while loading (in a worker or
        # here) travel with the batch and are logged through the running Runner's logger when it arrives.
        collate_fn = self.collate_fn
        plan = self.__dict__.get('_seed_plan')
        if plan is None:  # kept by the loader: what one epoch learnt, the next ones reuse
            plan = SeedPlan()
            object.__setattr__(self, '_seed_plan', plan)
        object.__setattr__(self, 'dataset', _SeededFetch(dataset, plan))
        object.__setattr__(self, 'collate_fn', _NotedCollate(collate_fn))
        try:
            if self.num_workers == 0:
                return _SingleProcessNotesIter(self)
            self.check_worker_number_rationality()
            return _MultiProcessingNotesIter(self)
        finally:
            object.__setattr__(self, 'dataset', dataset)
            object.__setattr__(self, 'collate_fn', collate_fn)


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
    (sampler seed, epoch, index) when it is fetched, see :class:`SeededDataLoader`; this costs a few us per
    sample when the pipeline draws from torch only, about 20 us per sample plus 0.1-0.6 ms per batch with
    ``num_workers=0`` when it draws from Python's and NumPy's generators too; False builds a plain ``DataLoader``, whose
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
