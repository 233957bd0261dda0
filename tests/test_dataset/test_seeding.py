"""Per-sample seeding at fetch time: a sample's randomness depends on (seed, epoch, index) only, not on the
workers, their order, a restart, or whether the dataset is a kiln BaseDataset or a plain torch Dataset."""
import pickle
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kiln.dataset import (BaseDataset, ConcatDataset, DefaultSampler, InfiniteSampler, RepeatDataset, SampleIndex,
                          SeededDataLoader, build_dataloader, get_sampler, sample_rng, sample_seed)


def _draw(i):
    return (int(i), type(i).__name__, random.random(), float(np.random.rand()), float(torch.rand(())))


class Noisy(BaseDataset):
    """Each sample draws from random, numpy and torch (like a random-flip / random-resize pipeline)."""

    def load_data_list(self):
        return [dict(i=i) for i in range(10)]

    def prepare_data(self, idx):
        return _draw(idx)


class PlainNoisy(Dataset):
    """The same, as a plain torch Dataset (not a kiln BaseDataset)."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return _draw(i)


def _as_list(batch):
    return list(batch)


def _loader(ds, workers, persistent=False, sampler=None):
    return build_dataloader(dict(dataset=ds, sampler=sampler or dict(type='DefaultSampler', shuffle=True),
                                 batch_size=3, num_workers=workers, persistent_workers=persistent,
                                 collate_fn=_as_list), seed=5)


def _epoch(loader, epoch):
    get_sampler(loader).set_epoch(epoch)
    return sorted(x for batch in loader for x in batch)


def _global_state():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def _same_state(a, b):
    return torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_sample_index_is_an_int_that_survives_pickling():
    i = SampleIndex(3, seed=7, epoch=2)
    j = pickle.loads(pickle.dumps(i))
    assert j == 3 and (j.seed, j.epoch) == (7, 2) and [10, 11, 12, 13][j] == 13 and repr(j) == '3'
    assert sample_seed(7, 2, 3) == sample_seed(7, 2, 3) != sample_seed(7, 3, 3) != sample_seed(7, 2, 4)
    seeds = {sample_seed(0, e, i) for e in range(20) for i in range(500)}
    assert len(seeds) == 10_000 and all(0 <= s < 2**32 for s in seeds)
    with pytest.raises(ValueError, match='must be >= 0'):
        sample_seed(-1, 0, 0)


@pytest.mark.parametrize('dataset_cls', [Noisy, PlainNoisy])
def test_same_samples_whatever_the_workers_and_the_global_rng_is_untouched(dataset_cls):
    ds = dataset_cls()
    state = _global_state()
    runs = {}
    for workers, persistent in ((0, False), (2, False), (2, True)):
        loader = _loader(ds, workers, persistent)
        assert isinstance(loader, SeededDataLoader) and loader.dataset is ds
        runs[workers, persistent] = [_epoch(loader, 0), _epoch(loader, 1)]
    first = runs[0, False]
    assert runs[2, False] == first and runs[2, True] == first
    assert first[0] != first[1]  # a new epoch draws new augmentations
    assert {x[1] for x in first[0]} == {'int'}  # the dataset gets plain ints
    assert _same_state(state, _global_state())  # loading in the main process leaves the model's RNG alone


@pytest.mark.parametrize('dataset_cls', [Noisy, PlainNoisy])
def test_resuming_mid_epoch_skips_indices_and_gives_the_same_samples(dataset_cls):
    ds = dataset_cls()
    loader = _loader(ds, 0)
    get_sampler(loader).set_epoch(1)
    full = [x for batch in loader for x in batch]
    resumed = _loader(ds, 2)
    resumed.sampler.load_state_dict(dict(epoch=1, seed=5, position=6))  # two batches of 3 done
    assert [x for batch in resumed for x in batch] == full[6:]


def test_infinite_sampler_and_wrappers():
    ds = Noisy()
    stream = iter(InfiniteSampler(ds, seed=1))
    idx = [next(stream) for _ in range(20)]
    assert [i.epoch for i in idx] == [0] * 10 + [1] * 10 and sorted(map(int, idx[:10])) == list(range(10))
    loader = _loader(RepeatDataset(ds, times=2), 2, sampler=dict(type='DefaultSampler', shuffle=False))
    out = [x for batch in loader for x in batch]
    assert [x[0] for x in out] == list(range(10)) * 2
    assert all(a[2:] != b[2:] for a, b in zip(out[:10], out[10:]))  # each repetition gets its own seed
    cat = ConcatDataset([ds, PlainNoisy()])
    loader = _loader(cat, 0, sampler=dict(type='InfiniteSampler', shuffle=True))
    a, b = next(iter(loader)), next(iter(_loader(cat, 2, sampler=dict(type='InfiniteSampler', shuffle=True))))
    assert a == b


def test_other_samplers_and_hand_indexing_use_the_global_rng():
    ds = PlainNoisy()
    assert ds[3] != ds[3]  # a plain int index: the global RNG is used as it is
    loader = build_dataloader(dict(dataset=ds, sampler=torch.utils.data.SequentialSampler(ds), batch_size=2,
                                   collate_fn=_as_list), seed=0)
    torch.manual_seed(0)
    a = next(iter(loader))[0][4]
    torch.manual_seed(0)
    assert next(iter(loader))[0][4] == a  # drawn from the global torch generator, not from a per-sample seed
    torch.manual_seed(1)
    assert next(iter(loader))[0][4] != a
    with sample_rng(SampleIndex(3, 1, 0)):  # the context manager seeds by hand and restores on exit
        x = ds[3]
    with sample_rng(SampleIndex(3, 1, 0)):
        assert ds[3] == x


def test_a_hand_built_torch_dataloader_or_per_sample_seed_false_is_not_seeded_per_sample():
    ds = PlainNoisy()
    loader = DataLoader(ds, batch_size=3, sampler=DefaultSampler(ds, seed=5), collate_fn=_as_list)
    torch.manual_seed(1)
    a = _epoch(loader, 0)
    assert a != _epoch(loader, 0)  # only kiln's loader seeds each sample; the docs say so
    off = build_dataloader(dict(dataset=ds, sampler=dict(type='DefaultSampler'), batch_size=3, collate_fn=_as_list,
                                per_sample_seed=False), seed=5)
    assert type(off) is DataLoader and _epoch(off, 0) != _epoch(off, 0)


class _Selective(Dataset):
    """Samples below ``first`` draw from torch only; later ones from NumPy, sometimes Python's random after it,
    and a Gaussian (cached halves); every sample warns once. Counts the fetches."""

    def __init__(self, first):
        self.first, self.calls = first, 0

    def __len__(self):
        return 12

    def __getitem__(self, i):
        import warnings
        self.calls += 1
        out = [i, float(torch.rand(()))]
        if i >= self.first:
            out.append(float(np.random.rand()))
            if np.random.rand() < 0.5:
                out += [random.random(), random.gauss(0, 1)]
            out.append(float(np.random.standard_normal()))
        warnings.warn(f'sample {i}')
        return out


@pytest.mark.parametrize('first', [0, 5, 99])
def test_lazy_seeding_same_samples_as_full_seeding(first):
    """Python's / NumPy's generators are seeded only once a sample is seen drawing from them: the samples are
    still those of seeding all three for every sample, the training process's generators (cached Gaussians
    included) come back unchanged, and the warnings of a fetch repeated for that reason count once."""
    import warnings

    from kiln.dataset.seeding import SeedPlan, fetch_batch, seed_sample
    indices = [SampleIndex(i, 3, 1) for i in (9, 3, 0, 7, 5, 6, 11, 1)]
    ds = _Selective(first)
    want = []
    for i in indices:
        seed_sample(i)
        want.append(ds[int(i)])
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    random.gauss(0, 1), np.random.standard_normal()  # leave a cached Gaussian in both
    before = (random.getstate(), pickle.dumps(np.random.get_state()), torch.get_rng_state())
    ds.calls, plan = 0, SeedPlan()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = fetch_batch(ds, indices, plan, True, caught)
    assert got == want
    assert (random.getstate(), pickle.dumps(np.random.get_state())) == before[:2]
    assert torch.equal(torch.get_rng_state(), before[2])
    assert sorted(str(w.message) for w in caught) == sorted(f'sample {int(i)}' for i in indices)
    draws = first < 12
    assert (plan.python, plan.numpy) == (draws, draws)
    assert ds.calls == len(indices) + draws  # one sample fetched again, once
    ds.calls = 0
    assert fetch_batch(ds, indices, plan, False) == want and ds.calls == len(indices)  # learnt: no refetch
    loader = build_dataloader(dict(dataset=_Selective(first), sampler=dict(type='DefaultSampler', shuffle=True),
                                   batch_size=4, collate_fn=list), seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        got = [s for batch in loader for s in batch]
        want = []
        for i in loader.sampler:
            seed_sample(i)
            want.append(loader.dataset[int(i)])
    assert got == want
