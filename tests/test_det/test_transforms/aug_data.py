"""Real-data samples for the augmentation tests: balloon (polygon masks), BCCD and coco128 (boxes)."""
import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from kiln.dataset.seeding import SampleIndex, seed_sample

REPO = Path(__file__).parents[3]
SHARED = REPO.parent / 'shared' / 'data'
BALLOON = SHARED / 'balloon'
COCO128 = SHARED / 'coco128'
BCCD = REPO / 'data' / 'bccd'
BCCD_CLASSES = ('RBC', 'WBC', 'Platelets')


@lru_cache(maxsize=None)
def balloon_dataset():
    from kiln.det.datasets import CocoDataset
    if not BALLOON.is_dir():
        pytest.skip('shared balloon data not beside the repo')
    return CocoDataset(data_root=str(BALLOON), ann_file='annotations/instances_train.json',
                       data_prefix=dict(img='train/'), metainfo=dict(classes=('balloon',)), pipeline=[])


@lru_cache(maxsize=None)
def coco128_dataset():
    from kiln.det.datasets import CocoDataset
    if not COCO128.is_dir():
        pytest.skip('shared coco128 data not beside the repo')
    return CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_train2017.json',
                       data_prefix=dict(img='images/train2017/'), pipeline=[])


def bccd_dataset(pipeline=None, **kwargs):
    from kiln.det.datasets import VOCDataset
    if pipeline is None:
        pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    return VOCDataset(data_root=str(BCCD) + '/', ann_file='ImageSets/Main/train.txt',
                      data_prefix=dict(sub_data_root=''), metainfo=dict(classes=BCCD_CLASSES), pipeline=pipeline,
                      **kwargs)


@lru_cache(maxsize=None)
def _bccd_plain():
    return bccd_dataset()


@lru_cache(maxsize=None)
def _bccd_sample(index: int) -> dict:
    return _bccd_plain()[index]


def bccd_sample(index: int = 0) -> dict:
    """Loaded BCCD sample (640x480 BGR uint8, boxes, labels, ignore flags); a fresh copy."""
    return copy.deepcopy(_bccd_sample(index))


@lru_cache(maxsize=None)
def _balloon_sample(index: int, poly2mask: bool, long_edge: int) -> dict:
    from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, Resize
    results = balloon_dataset().get_data_info(index)
    results = LoadImageFromFile()(results)
    results = LoadAnnotations(with_mask=True, poly2mask=poly2mask)(results)
    return Resize(scale=(long_edge, long_edge), keep_ratio=True)(results)


def balloon_sample(index: int = 4, poly2mask: bool = True, long_edge: int = 512) -> dict:
    """Balloon image ``index`` with its masks, resized to ``long_edge`` (keeps tests fast); a fresh copy."""
    return copy.deepcopy(_balloon_sample(index, poly2mask, long_edge))


def coco128_sample(index: int) -> dict:
    from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile
    return LoadAnnotations()(LoadImageFromFile()(coco128_dataset().get_data_info(index)))


def seeded(seed: int, index: int = 0, epoch: int = 0) -> None:
    """Seed the global generators as kiln's dataloader does before fetching sample ``index``."""
    seed_sample(SampleIndex(index, seed, epoch))


def mask_extents(masks) -> np.ndarray:
    """(N, 4) xyxy extent of each mask: bitmaps in the pixel-edge convention (a one-pixel mask at (x, y) is
    [x, y, x+1, y+1]), polygons as their extreme vertices (clipped to the canvas)."""
    return masks.get_bboxes().numpy()
