import pytest
import torch

import kiln.dataset.sampler as sampler_mod
from kiln.dataset import DefaultSampler, InfiniteSampler


def fake_dist(monkeypatch, rank, world):
    monkeypatch.setattr(sampler_mod, '_dist_info', lambda: (rank, world))


def test_default_sampler_shuffles_from_seed_plus_epoch():
    s = DefaultSampler(list(range(10)), shuffle=True, seed=7)
    g = torch.Generator().manual_seed(7)
    assert list(s) == torch.randperm(10, generator=g).tolist()
    s.set_epoch(3)
    g = torch.Generator().manual_seed(10)
    assert list(s) == torch.randperm(10, generator=g).tolist()
    assert list(DefaultSampler(range(5), shuffle=False, seed=0)) == [0, 1, 2, 3, 4]


def test_default_sampler_shards_and_rounds_up(monkeypatch):
    shards = []
    for rank in range(3):
        fake_dist(monkeypatch, rank, 3)
        s = DefaultSampler(list(range(10)), shuffle=True, seed=1)
        assert len(s) == 4
        shards.append(list(s))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1)).tolist()
    padded = (perm + perm)[:12]
    assert shards == [padded[r::3] for r in range(3)]
    # without round_up every index appears exactly once
    shards = []
    for rank in range(3):
        fake_dist(monkeypatch, rank, 3)
        s = DefaultSampler(list(range(10)), shuffle=False, round_up=False)
        shards.append(list(s))
        assert len(s) == len(shards[-1])
    assert sorted(sum(shards, [])) == list(range(10))


def test_default_sampler_state_and_position():
    s = DefaultSampler(list(range(8)), seed=3)
    s.set_epoch(2)
    full = list(s)
    state = s.state_dict()
    assert state == dict(epoch=2, seed=3, shuffle=True, position=0)
    t = DefaultSampler(list(range(8)), seed=99)
    t.load_state_dict(dict(state, position=5))
    assert list(t) == full[5:]
    assert list(t) == full  # position is used once


def test_random_seed_when_none():
    a = DefaultSampler(list(range(4)), seed=None)
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**31


def test_infinite_sampler(monkeypatch):
    s = InfiniteSampler(list(range(4)), seed=5)
    it = iter(s)
    got = [next(it) for _ in range(12)]
    g = torch.Generator().manual_seed(5)
    expected = sum((torch.randperm(4, generator=g).tolist() for _ in range(3)), [])
    assert got == expected
    fake_dist(monkeypatch, 1, 2)
    r1 = InfiniteSampler(list(range(4)), seed=5)
    it1 = iter(r1)
    assert [next(it1) for _ in range(6)] == expected[1::2]
    r1.load_state_dict(dict(seed=5, position=2))
    it1 = iter(r1)
    assert [next(it1) for _ in range(4)] == expected[1::2][2:]
    with pytest.raises(ValueError, match='empty'):
        InfiniteSampler([])
