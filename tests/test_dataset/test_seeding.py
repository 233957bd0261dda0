"""Per-sample seeding: augmentation depends on (seed, epoch, index) only, not on workers or order."""
import pickle
import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from kiln.dataset import (BaseDataset, ConcatDataset, DefaultSampler, InfiniteSampler, RepeatDataset, SampleIndex,
                          pseudo_collate, sample_seed)


class Noisy(BaseDataset):
    """Each sample draws from random, numpy and torch (like a random-flip / random-resize pipeline)."""

    def load_data_list(self):
        return [dict(i=i) for i in range(10)]

    def prepare_data(self, idx):
        return (idx, random.random(), float(np.random.rand()), float(torch.rand(())))


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return sorted(x for batch in loader for x in batch)


def test_sample_index_is_an_int_that_survives_pickling():
    i = SampleIndex(3, seed=7, epoch=2)
    j = pickle.loads(pickle.dumps(i))
    assert j == 3 and (j.seed, j.epoch) == (7, 2) and [10, 11, 12, 13][j] == 13 and repr(j) == '3'
    assert sample_seed(7, 2, 3) == sample_seed(7, 2, 3) != sample_seed(7, 3, 3) != sample_seed(7, 2, 4)


def test_same_samples_whatever_the_workers_and_the_global_rng_is_untouched():
    ds = Noisy()
    state = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    runs = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, sampler=DefaultSampler(ds, seed=5), num_workers=workers,
                            collate_fn=pseudo_collate, generator=torch.Generator())  # as build_dataloader
        runs.append([_epoch(loader, 0), _epoch(loader, 1)])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]  # a new epoch draws new augmentations
    assert torch.equal(state[0], torch.get_rng_state()) and (state[1] == np.random.get_state()[1]).all()
    assert state[2] == random.getstate()
    # resuming mid-epoch (sampler position) gives the same samples as the uninterrupted epoch
    sampler = DefaultSampler(ds, seed=5)
    sampler.set_epoch(1)
    first = [ds[i] for i in sampler]
    sampler.load_state_dict(dict(epoch=1, seed=5, position=4))
    assert [ds[i] for i in sampler] == first[4:]
    assert ds[3] != ds[3]  # a plain int index: the global RNG is used as it is


def test_infinite_sampler_and_wrappers():
    ds = Noisy()
    stream = iter(InfiniteSampler(ds, seed=1))
    idx = [next(stream) for _ in range(20)]
    assert [i.epoch for i in idx] == [0] * 10 + [1] * 10 and sorted(map(int, idx[:10])) == list(range(10))
    rep = RepeatDataset(ds, times=2)
    a, b = rep[SampleIndex(3, 0, 0)], rep[SampleIndex(13, 0, 0)]
    assert a[0] == b[0] == 3 and a[1:] != b[1:]  # each repetition gets its own seed
    assert rep[SampleIndex(13, 0, 0)] == b
    cat = ConcatDataset([ds, Noisy()])
    assert cat[SampleIndex(12, 4, 1)] == cat[SampleIndex(12, 4, 1)] and cat[SampleIndex(12, 4, 1)][0] == 2
