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
import struct
import sys
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ['SampleIndex', 'SeedPlan', 'fetch_batch', 'sample_seed', 'seed_sample', 'sample_rng', 'global_rng_guard']

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


# ----------------------------------------------------------------------------------- lazy seeding of a batch
# Seeding Python's and NumPy's generators costs ~10-25 us per sample and saving/restoring NumPy's state ~0.5 ms per
# batch, yet many pipelines never draw from them. A sample that does not draw from a generator gives the same
# result whether that generator was seeded for it or not, so ``fetch_batch`` seeds torch's CPU generator for every
# sample but Python's and NumPy's only once a sample has been seen drawing from them: it reads their position
# before and after each fetch (read-only, through ctypes, self-tested against the public get-state calls; when
# the test fails that generator is always seeded) and, when an unseeded generator moved, fetches that sample again
# with it seeded, and seeds it for every later sample of this loader. The result is the same as seeding all three
# for every sample; the one visible difference is that ``dataset[i]`` runs twice for such a sample (once per
# generator and loader, or per worker).


class _Probe:
    """Cheap read-only view of one global generator: ``mark()`` (a few words that change whenever it draws),
    ``snapshot()`` (its full state, raw) and ``restore(snapshot)`` (through the library's public set-state)."""

    def __init__(self, mark: Callable[[], tuple], snapshot: Callable[[], Any], restore: Callable[[Any], None]):
        self.mark, self.snapshot, self.restore = mark, snapshot, restore


def _python_probe() -> _Probe | None:
    """``random``'s Mersenne Twister (CPython's ``RandomObject``: ``int index; uint32_t state[624]`` after the
    object header) and its cached Gaussian ``gauss_next``."""
    inst = random._inst  # type: ignore[attr-defined]  (what random.random, random.seed... are bound to)
    base = id(inst) + object.__basicsize__
    if sys.getsizeof(inst) < object.__basicsize__ + 4 * 625:
        return None
    words = (ctypes.c_uint32 * 3).from_address(base)  # index, state[0], state[1]

    def mark() -> tuple:
        return words[0], words[1], words[2], inst.gauss_next

    def snapshot() -> tuple:
        return ctypes.string_at(base, 4 * 625), inst.gauss_next

    def restore(snap: tuple) -> None:
        raw, gauss_next = snap
        values = struct.unpack('625I', raw)
        random.setstate((3, values[1:] + values[:1], gauss_next))

    return _Probe(mark, snapshot, restore)


def _numpy_probe() -> _Probe | None:
    """NumPy's global ``RandomState``: its MT19937 state (``bit_generator.ctypes.state_address``:
    ``uint32 key[624]; int pos``) and its cached Gaussian (``has_gauss``, ``gauss``, located in the
    RandomState object by the self-test)."""
    rs = np.random.mtrand._rand
    bit_gen = rs._bit_generator
    addr = bit_gen.ctypes.state_address
    key = (ctypes.c_uint32 * 625).from_address(addr)
    # where has_gauss / gauss live: seed, draw one normal (caches the second), look for the cached value
    saved = np.random.get_state()
    try:
        np.random.seed(12345)
        np.random.standard_normal()
        _, _, _, has_gauss, gauss = np.random.get_state()
        raw = ctypes.string_at(id(rs), sys.getsizeof(rs))
        offsets = [o for o in range(0, len(raw) - 15, 8)
                   if struct.unpack_from('d', raw, o + 8)[0] == gauss and struct.unpack_from('i', raw, o)[0] == 1]
    finally:
        np.random.set_state(saved)
    if has_gauss != 1 or len(offsets) != 1:
        return None
    cached = ctypes.c_int.from_address(id(rs) + offsets[0])
    cached_value = ctypes.c_double.from_address(id(rs) + offsets[0] + 8)

    def mark() -> tuple:
        return key[624], key[0], key[1], cached.value

    def snapshot() -> tuple:
        return ctypes.string_at(addr, 4 * 625), cached.value, cached_value.value

    def restore(snap: tuple) -> None:
        raw, has_gauss, gauss = snap
        values = np.frombuffer(raw, dtype=np.uint32)
        np.random.set_state(('MT19937', values[:624].copy(), int(values[624]), has_gauss, gauss))

    return _Probe(mark, snapshot, restore)


def _self_test(probe: _Probe | None, state: Callable[[], tuple], draw: Callable[[], Any]) -> _Probe | None:
    """Keep ``probe`` only if its marks and snapshots follow the library's public state over seeds and draws
    (and restoring a snapshot gives back the public state)."""
    if probe is None:
        return None
    try:
        before, first, mark = state(), probe.snapshot(), probe.mark()
        marks = {mark}
        for _ in range(4):
            draw()
            marks.add(probe.mark())
        probe.restore(first)
        return probe if len(marks) == 5 and probe.mark() == mark and _same(state(), before) else None
    except Exception:  # noqa: BLE001  (an unexpected layout: seed that generator for every sample instead)
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


_probes: tuple | None = None


def _get_probes() -> tuple:
    """(python probe or None, numpy probe or None), built and self-tested once per process."""
    global _probes
    if _probes is None:
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            py = _self_test(_python_probe(), random.getstate, lambda: (random.random(), random.gauss(0, 1)))
            npr = _self_test(_numpy_probe(), np.random.get_state,
                             lambda: (np.random.random(), np.random.standard_normal()))
        except Exception:  # noqa: BLE001
            py = npr = None
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        _probes = (py, npr)
    return _probes


class SeedPlan:
    """Which global generators each sample of a loader is seeded for: torch's CPU generator always, Python's
    ``random`` and NumPy's once a sample was seen drawing from them (then for every later sample: sticky), or
    always when the generator cannot be watched. Shared by the iterators of one loader (a worker has its copy)."""

    __slots__ = ('python', 'numpy')

    def __init__(self) -> None:
        self.python = False  # False: not seen drawing yet (decided on first use, see fetch_batch)
        self.numpy = False

    def __getstate__(self) -> tuple:
        return self.python, self.numpy

    def __setstate__(self, state: tuple) -> None:
        self.python, self.numpy = state


def fetch_batch(dataset: Any, indices: list, plan: SeedPlan, restore: bool, caught: list | None = None) -> list:
    """``[dataset[int(i)] for i in indices]``, each sample fetched as if ``random``, ``numpy.random`` and torch's
    CPU generator had been seeded with :func:`sample_seed` for it (see the comment above ``_Probe``).

    Args:
        dataset: a map-style dataset.
        indices: :class:`SampleIndex` values.
        plan: the loader's :class:`SeedPlan` (updated when a sample is seen drawing from a new generator).
        restore: put the three generators back as they were before the batch (the training process).
        caught: the list recording the batch's warnings (``warnings.catch_warnings(record=True)``): the
            warnings of a fetch that is repeated are dropped, so each sample's warnings count once.
    """
    py_probe, np_probe = _get_probes()
    if py_probe is None:
        plan.python = True
    if np_probe is None:
        plan.numpy = True
    watch_py, watch_np = not plan.python, not plan.numpy
    saved_torch = torch.get_rng_state() if restore else None
    py_saved = np_saved = py_mark = np_mark = None
    if watch_py:
        py_mark = py_probe.mark()
        if restore:
            py_saved = py_probe.snapshot()
    elif restore:
        py_saved = random.getstate()
    if watch_np:
        np_mark = np_probe.mark()
        if restore:
            np_saved = np_probe.snapshot()
    elif restore:
        np_saved = np.random.get_state()
    py_moved = np_moved = False  # an unseeded generator drew: restore it from its snapshot
    try:
        out = []
        for index in indices:
            s = sample_seed(index.seed, index.epoch, int(index))
            if not watch_py:
                _seed_python(s)
            if not watch_np:
                _seed_numpy(s)
            _seed_torch(s)
            mark = len(caught) if caught is not None else 0
            sample = dataset[int(index)]
            while (watch_py and py_probe.mark() != py_mark) or (watch_np and np_probe.mark() != np_mark):
                # this sample drew from a generator that was not seeded for it: seed that one from now on and
                # fetch the sample again (seeding can change what else it draws: loop until nothing new moved)
                if watch_py and py_probe.mark() != py_mark:
                    plan.python, watch_py, py_moved = True, False, True
                if watch_np and np_probe.mark() != np_mark:
                    plan.numpy, watch_np, np_moved = True, False, True
                if caught is not None:
                    del caught[mark:]
                if not watch_py:
                    _seed_python(s)
                if not watch_np:
                    _seed_numpy(s)
                _seed_torch(s)
                sample = dataset[int(index)]
            out.append(sample)
        return out
    finally:
        if restore:
            torch.set_rng_state(saved_torch)
            if py_moved or (watch_py and py_probe.mark() != py_mark):
                py_probe.restore(py_saved)  # watched from the start, then drawn from
            elif not watch_py:
                random.setstate(py_saved)  # seeded for every sample
            if np_moved or (watch_np and np_probe.mark() != np_mark):
                np_probe.restore(np_saved)
            elif not watch_np:
                np.random.set_state(np_saved)
