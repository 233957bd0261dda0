"""ClassBalancedDataset (repeat factor sampling) on real BCCD records, RandomSubsetSampler."""
import math
from pathlib import Path

import pytest

from kiln.dataset import DefaultSampler
from kiln.dataset.dataset_wrapper import ClassBalancedDataset
from kiln.dataset.sampler import RandomSubsetSampler
from kiln.registry import DATA_SAMPLERS, DATASETS

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'


@pytest.fixture(scope='module')
def bccd():
    import kiln.det  # noqa: F401  (registers VOCDataset)
    return dict(type='VOCDataset', data_root=str(BCCD), ann_file='ImageSets/Main/train.txt',
                data_prefix=dict(sub_data_root=''), metainfo=dict(classes=('RBC', 'WBC', 'Platelets')))


def test_repeat_factors_follow_the_lvis_rule(bccd):
    ds = DATASETS.build(dict(type='ClassBalancedDataset', dataset=bccd, oversample_thr=0.9))
    base = ds.dataset
    n = len(base)
    cats = [set(base.get_cat_ids(i)) for i in range(n)]
    freq = {c: sum(c in s for s in cats) / n for c in range(3)}
    assert freq[0] > 0.9 > freq[2]  # RBC is everywhere, platelets are rarer
    for i, s in enumerate(cats):
        expected = max((max(1.0, math.sqrt(0.9 / freq[c])) for c in s), default=1.0)
        assert ds.repeat_factors[i] == pytest.approx(expected)
        assert ds.repeat_indices.count(i) == math.ceil(expected)
    assert len(ds) > n
    k = ds.repeat_indices.index(next(i for i, s in enumerate(cats) if 2 in s))
    assert ds.get_data_info(k)['img_path'] == base.get_data_info(ds.repeat_indices[k])['img_path']
    assert ds.metainfo['classes'] == ('RBC', 'WBC', 'Platelets')


def test_class_balanced_errors():
    with pytest.raises(ValueError, match='oversample_thr'):
        ClassBalancedDataset(dataset=[1, 2], oversample_thr=0)
    with pytest.raises(TypeError, match='get_cat_ids'):
        ClassBalancedDataset(dataset=[1, 2], oversample_thr=0.1)


def test_random_subset_sampler_is_fixed_shuffled_and_resumable():
    data = list(range(200))
    s = DATA_SAMPLERS.build(dict(type='RandomSubsetSampler', subset_ratio=0.1, subset_seed=5),
                            default_args=dict(dataset=data, seed=1))
    assert len(s) == 20 and len(set(s.subset)) == 20
    again = RandomSubsetSampler(data, 0.1, subset_seed=5, seed=1)
    assert again.subset == s.subset  # same subset in every run
    epoch0 = [int(i) for i in s]
    assert sorted(epoch0) == s.subset
    s.set_epoch(1)
    epoch1 = [int(i) for i in s]
    assert sorted(epoch1) == s.subset and epoch1 != epoch0  # reshuffled, same subset
    s.position = 7
    assert [int(i) for i in s] == epoch1[7:]  # resume skips, no data loaded
    idx = next(iter(s))
    assert (idx.seed, idx.epoch) == (1, 1)  # per-sample seeding information kept
    assert s.state_dict()['subset_size'] == 20
    ref = DefaultSampler(list(range(20)), seed=1)
    ref.set_epoch(1)
    assert epoch1 == [s.subset[i] for i in ref]
    with pytest.raises(ValueError, match='subset_ratio'):
        RandomSubsetSampler(data, 1.5)
