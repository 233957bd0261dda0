"""AspectRatioBatchSampler on coco128 (mixed portrait / landscape photos): grouping, coverage, resume."""
from pathlib import Path

import pytest

from kiln.dataset import DefaultSampler
from kiln.det.datasets import YOLODataset
from kiln.det.datasets.samplers import AspectRatioBatchSampler
from kiln.registry import DATA_SAMPLERS

COCO128 = Path(__file__).parents[3].parent / 'shared' / 'data' / 'coco128'


@pytest.fixture(scope='module')
def dataset():
    return YOLODataset(data_root=str(COCO128), ann_file='data.yaml', split='train')


def _portrait(ds, i):
    info = ds.get_data_info(int(i))
    return info['width'] < info['height']


def test_batches_share_one_orientation_and_cover_the_epoch(dataset):
    portrait = sum(_portrait(dataset, i) for i in range(len(dataset)))
    assert 0 < portrait < len(dataset)  # the real set mixes both
    sampler = DefaultSampler(dataset, shuffle=True, seed=3)
    batches = list(DATA_SAMPLERS.build(dict(type='AspectRatioBatchSampler'),
                                       default_args=dict(sampler=sampler, batch_size=4)))
    full = [b for b in batches if len(b) == 4]
    mixed = [b for b in full if len({_portrait(dataset, i) for i in b}) > 1]
    assert len(mixed) <= 1  # only the merged leftovers may mix
    assert sorted(int(i) for b in batches for i in b) == list(range(len(dataset)))
    assert len(batches) == len(AspectRatioBatchSampler(sampler, 4)) == 32


def test_drop_last_and_argument_errors(dataset):
    sampler = DefaultSampler(dataset, shuffle=False)
    batches = list(AspectRatioBatchSampler(sampler, 5, drop_last=True))
    assert all(len(b) == 5 for b in batches) and len(batches) == len(AspectRatioBatchSampler(sampler, 5, True))
    with pytest.raises(ValueError, match='batch_size'):
        AspectRatioBatchSampler(sampler, 0)
    with pytest.raises(TypeError, match='Sampler'):
        AspectRatioBatchSampler([1, 2], 2)


def test_resume_position_skips_whole_batches(dataset):
    sampler = DefaultSampler(dataset, shuffle=True, seed=7)
    sampler.set_epoch(2)
    batch_sampler = AspectRatioBatchSampler(sampler, 4)
    uninterrupted = [[int(i) for i in b] for b in batch_sampler]
    sampler.position = 9 * 4  # what the train loop sets after 9 iterations of this epoch
    resumed = [[int(i) for i in b] for b in batch_sampler]
    assert resumed == uninterrupted[9:]
    assert [[int(i) for i in b] for b in batch_sampler] == uninterrupted  # the next pass starts from 0
