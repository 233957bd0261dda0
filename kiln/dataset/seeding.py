"""Per-sample seeding: the randomness of sample ``i`` is a function of (sampler seed, epoch, i) only.

Samplers yield :class:`SampleIndex` values: plain ``int`` indices that also carry the sampler's ``seed`` and the
``epoch`` (for ``InfiniteSampler``: the pass over the dataset) they were drawn in. ``BaseDataset.__getitem__``
(and the dataset wrappers) run the pipeline inside :func:`sample_rng`, which seeds Python's ``random``, NumPy's
global generator and torch's CPU generator from ``(seed, epoch, index)`` and restores their previous states
afterwards. A sample's augmentation therefore does not depend on which dataloader worker loads it, in which
order, or whether the run was resumed mid-epoch, and loading data never disturbs the training process's RNG.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ['SampleIndex', 'sample_seed', 'sample_rng']


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


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed derived from ``(seed, epoch, index)`` with ``numpy.random.SeedSequence`` (well mixed:
    neighbouring indices or epochs give unrelated streams).

    Raises:
        ValueError: a negative component.
    """
    if seed < 0 or epoch < 0 or index < 0:
        raise ValueError(f'sample_seed: seed, epoch and index must be >= 0, got {(seed, epoch, index)}')
    return int(np.random.SeedSequence((int(seed), int(epoch), int(index))).generate_state(1)[0])


@contextlib.contextmanager
def sample_rng(index: Any) -> Iterator[None]:
    """Seed ``random``, ``numpy.random`` and torch's CPU generator for one sample, restore them on exit.

    Does nothing when ``index`` is a plain ``int`` (e.g. ``dataset[3]`` called by hand): then the global
    generators are used as they are.
    """
    if not isinstance(index, SampleIndex):
        yield
        return
    s = sample_seed(index.seed, index.epoch, abs(int(index)))
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(s)
    np.random.seed(s)
    torch.random.default_generator.manual_seed(s)  # CPU only: CUDA generators are left alone
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
