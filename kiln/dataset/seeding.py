"""Per-sample seeding: the randomness of sample ``i`` is a function of (sampler seed, epoch, i) only.

Samplers yield :class:`SampleIndex` values: plain ``int`` indices that also carry the sampler's ``seed`` and the
``epoch`` (for ``InfiniteSampler``: the pass over the dataset) they were drawn in. The dataloader built by kiln
(:class:`kiln.dataset.SeededDataLoader`, see ``kiln.dataset.loader``) seeds Python's ``random``, NumPy's global
generator and torch's CPU generator from ``(seed, epoch, index)`` right before it fetches each sample, for any
map-style dataset (a kiln ``BaseDataset`` or a plain ``torch.utils.data.Dataset``), and hands the dataset a
plain ``int``. A sample's augmentation therefore does not depend on which dataloader worker loads it, in which
order, or whether the run was resumed mid-epoch. In the training process (``num_workers=0``) the generators are
restored after each batch, so loading data never disturbs the model's random stream (dropout).
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ['SampleIndex', 'sample_seed', 'seed_sample', 'sample_rng', 'global_rng_guard']

_MASK64 = (1 << 64) - 1


class SampleIndex(int):
    """An ``int`` dataset index that also records ``seed`` and ``epoch`` of the sampler draw.

    It behaves as the plain index everywhere (list indexing, arithmetic returns plain ``int``) and pickles to
    dataloader workers with its attributes.
    """

    seed: int
    epoch: int

    def __new__(cls, value: int, seed: int, epoch: int) -> 'SampleIndex':
        obj = super().__new__(cls, value)
        obj.seed = int(seed)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self) -> tuple:
        return SampleIndex, (int(self), self.seed, self.epoch)

    def __repr__(self) -> str:
        return int.__repr__(self)


def _mix(x: int) -> int:
    """The SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014):
    a bijection of 64-bit ints that spreads every input bit over the output."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


_prefix_cache: dict[tuple[int, int], int] = {}


def _prefix(seed: int, epoch: int) -> int:
    """The first two SplitMix64 rounds of :func:`sample_seed` (shared by every index of an epoch)."""
    key = (seed, epoch)
    x = _prefix_cache.get(key)
    if x is None:
        if len(_prefix_cache) > 64:
            _prefix_cache.clear()
        x = _prefix_cache[key] = _mix(_mix(int(seed) & _MASK64) ^ (int(epoch) & _MASK64))
    return x


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed derived from ``(seed, epoch, index)`` by chaining the SplitMix64 finaliser (well mixed:
    neighbouring indices or epochs give unrelated streams). The ``(seed, epoch)`` part is computed once per
    epoch, so one mixing round per sample remains (about a microsecond).

    Raises:
        ValueError: a negative component.
    """
    if seed < 0 or epoch < 0 or index < 0:
        raise ValueError(f'sample_seed: seed, epoch and index must be >= 0, got {(seed, epoch, index)}')
    return _mix(_prefix(seed, epoch) ^ (int(index) & _MASK64)) >> 32


_seed_python = random.seed
_seed_numpy = np.random.seed
_seed_torch = torch.random.default_generator.manual_seed


def seed_sample(index: Any) -> bool:
    """Seed ``random``, ``numpy.random`` and torch's CPU generator for sample ``index`` (no restore).

    Returns:
        True when ``index`` is a :class:`SampleIndex` (and the generators were seeded), False for a plain
        ``int`` (then nothing is touched).
    """
    if not isinstance(index, SampleIndex):
        return False
    s = sample_seed(index.seed, index.epoch, abs(int(index)))
    _seed_python(s)
    _seed_numpy(s)
    _seed_torch(s)  # CPU only: CUDA generators are left alone
    return True


# ----------------------------------------------------------------------------------- save / restore
def _save_global_rng() -> tuple:
    """The states of ``random``, NumPy's global RandomState and torch's CPU generator (see
    :func:`_restore_global_rng`), through each library's own ``getstate`` / ``get_state`` / ``get_rng_state``
    (about 0.1 ms in all, once per batch)."""
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _restore_global_rng(state: tuple) -> None:
    py_state, np_state, torch_state = state
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


@contextlib.contextmanager
def global_rng_guard() -> Iterator[None]:
    """Save the states of ``random``, ``numpy.random`` and torch's CPU generator, restore them on exit."""
    state = _save_global_rng()
    try:
        yield
    finally:
        _restore_global_rng(state)


@contextlib.contextmanager
def sample_rng(index: Any) -> Iterator[None]:
    """Seed the global generators for one sample (:func:`seed_sample`) and restore them on exit.

    Does nothing when ``index`` is a plain ``int`` (e.g. ``dataset[3]`` called by hand): then the global
    generators are used as they are.
    """
    if not isinstance(index, SampleIndex):
        yield
        return
    with global_rng_guard():
        seed_sample(index)
        yield
