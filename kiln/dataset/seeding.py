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
import ctypes
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
# NumPy's ``get_state`` / ``set_state`` copy the 624 words of the MT19937 key one Python object at a time
# (about 0.15 ms each). The global RandomState's MT19937 state is a plain C struct (``uint32 key[624]; int
# pos``) whose address NumPy publishes (``bit_generator.ctypes.state_address``): it is saved and restored with one
# memory copy. The RandomState's own cached Gaussian (``has_gauss`` / ``gauss``, the second value of a legacy
# ``normal`` pair) is read and written through ``get_state`` / ``set_state`` with the bit generator briefly
# replaced by a stand-in whose ``state`` costs nothing. A self-test on a private RandomState decides once whether
# this works with the installed NumPy; otherwise the exact slow path is used.
_MT_STATE_BYTES = 624 * 4 + 4


class _StateStandIn:
    """What ``RandomState.get_state`` / ``set_state`` see as the bit generator while the Gaussian is moved."""

    @property
    def state(self) -> dict:
        return {'bit_generator': 'MT19937', 'state': {}}

    @state.setter
    def state(self, value: dict) -> None:
        pass


_STAND_IN = _StateStandIn()
_np_fast: bool | None = None  # None: not tested yet


def _np_fast_get(rs: Any) -> tuple | None:
    bg = rs._bit_generator
    if type(bg) is not np.random.MT19937:
        return None
    rs._bit_generator = _STAND_IN
    try:
        st = rs.get_state(legacy=False)
    finally:
        rs._bit_generator = bg
    return bg, ctypes.string_at(bg.ctypes.state_address, _MT_STATE_BYTES), st['has_gauss'], st['gauss']


def _np_fast_set(rs: Any, saved: tuple) -> None:
    bg, key, has_gauss, gauss = saved
    if rs._bit_generator is not bg:  # someone swapped the generator meanwhile: the struct copy would be wrong
        raise RuntimeError('the global NumPy bit generator changed while a batch was loaded')
    rs._bit_generator = _STAND_IN
    try:
        rs.set_state({'bit_generator': 'MT19937', 'state': {}, 'has_gauss': has_gauss, 'gauss': gauss})
    finally:
        rs._bit_generator = bg
    ctypes.memmove(bg.ctypes.state_address, key, _MT_STATE_BYTES)


def _np_fast_works() -> bool:
    """Round-trip a private RandomState (with a cached Gaussian) through the fast path and compare draws."""
    try:
        rs = np.random.RandomState(np.random.MT19937(0))
        rs.seed(12345)
        rs.standard_normal()  # leaves the second Gaussian of the pair cached
        saved = _np_fast_get(rs)
        expected = (rs.standard_normal(), rs.random(5).tolist(), rs.standard_normal())
        rs.seed(7)
        rs.random(3)
        rs.standard_normal()
        _np_fast_set(rs, saved)
        return (rs.standard_normal(), rs.random(5).tolist(), rs.standard_normal()) == expected
    except Exception:
        return False


def _save_global_rng() -> tuple:
    """The states of ``random``, NumPy's global RandomState and torch's CPU generator (see
    :func:`_restore_global_rng`)."""
    global _np_fast
    if _np_fast is None:
        _np_fast = _np_fast_works()
    rs = np.random.mtrand._rand
    np_state = _np_fast_get(rs) if _np_fast else None
    return random.getstate(), np_state if np_state is not None else rs.get_state(), torch.get_rng_state()


def _restore_global_rng(state: tuple) -> None:
    py_state, np_state, torch_state = state
    random.setstate(py_state)
    if type(np_state) is tuple and len(np_state) == 4 and type(np_state[0]) is np.random.MT19937:
        _np_fast_set(np.random.mtrand._rand, np_state)
    else:
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
