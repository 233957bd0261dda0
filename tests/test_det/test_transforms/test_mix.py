"""Multi-image augmentations on real images (BCCD boxes, balloon masks): Mosaic, MixUp, their cached variants
and MultiImageMixDataset; exact box arithmetic, masks following boxes, seeded determinism and the resume claims
of the cached variants."""
import copy

import cv2
import numpy as np
import pytest
from test_det.test_transforms.aug_data import (balloon_sample, bccd_dataset, bccd_sample, mask_extents,
                                               seeded)

from kiln.det.datasets import MultiImageMixDataset
from kiln.det.datasets.transforms import CachedMixUp, CachedMosaic, MixUp, Mosaic
from kiln.det.structures.mask import BitmapMasks, PolygonMasks


def _quadrant_offsets():
    return [(0, 0), (320, 0), (0, 240), (320, 240)]


def test_mosaic_fixed_centre_scales_and_shifts_each_image_into_its_quadrant():
    samples = [bccd_sample(i) for i in range(4)]
    results = dict(samples[0], mix_results=samples[1:])
    seeded(0)
    out = Mosaic(img_scale=(320, 240), center_ratio_range=(1.0, 1.0))(results)
    assert out['img'].shape == (480, 640, 3) and out['img_shape'] == (480, 640)
    expect_boxes, expect_labels = [], []
    for s, (ox, oy) in zip(samples, _quadrant_offsets()):
        quad = out['img'][oy:oy + 240, ox:ox + 320]
        np.testing.assert_array_equal(quad, cv2.resize(s['img'], (320, 240), interpolation=cv2.INTER_LINEAR))
        expect_boxes.append(s['gt_bboxes'] * 0.5 + np.array([ox, oy, ox, oy], np.float32))
        expect_labels.append(s['gt_bboxes_labels'])
    np.testing.assert_allclose(out['gt_bboxes'], np.concatenate(expect_boxes), rtol=1e-6)
    np.testing.assert_array_equal(out['gt_bboxes_labels'], np.concatenate(expect_labels))
    assert len(out['gt_ignore_flags']) == len(out['gt_bboxes'])


def test_mosaic_random_centre_boxes_stay_in_their_quadrants():
    samples = [bccd_sample(i) for i in range(4, 8)]
    n_src = sum(len(s['gt_bboxes']) for s in samples)
    for seed in range(4):
        seeded(seed)
        np.random.uniform(0, 1)
        cx, cy = int(np.random.uniform(0.5, 1.5) * 320), int(np.random.uniform(0.5, 1.5) * 240)
        seeded(seed)
        out = Mosaic(img_scale=(320, 240))(dict(copy.deepcopy(samples[0]), mix_results=samples[1:]))
        b = out['gt_bboxes']
        quads = [(0, 0, cx, cy), (cx, 0, 640, cy), (0, cy, cx, 480), (cx, cy, 640, 480)]
        inside_one = np.zeros(len(b), bool)
        for x1, y1, x2, y2 in quads:
            inside_one |= (b[:, 0] >= x1 - 1e-3) & (b[:, 1] >= y1 - 1e-3) & (b[:, 2] <= x2 + 1e-3) & \
                (b[:, 3] <= y2 + 1e-3)
        assert inside_one.all()
        assert 0 < len(b) <= n_src and (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
        assert out['img'].shape == (480, 640, 3)


@pytest.mark.parametrize('poly2mask', [True, False])
def test_mosaic_carries_masks_with_boxes(poly2mask):
    samples = [balloon_sample(i, poly2mask=poly2mask, long_edge=256) for i in (3, 4, 7, 0)]
    seeded(2)
    out = Mosaic(img_scale=(256, 256))(dict(samples[0], mix_results=samples[1:]))
    masks = out['gt_masks']
    assert isinstance(masks, BitmapMasks if poly2mask else PolygonMasks)
    assert (masks.height, masks.width) == out['img'].shape[:2] == (512, 512)
    assert len(masks) == len(out['gt_bboxes']) == len(out['gt_bboxes_labels']) > 0
    ext = mask_extents(masks)
    nonempty = masks.areas > 0
    # every mask lies within its box (up to the resize rounding)
    assert np.all(ext[nonempty, :2] >= out['gt_bboxes'][nonempty, :2] - 2)
    assert np.all(ext[nonempty, 2:] <= out['gt_bboxes'][nonempty, 2:] + 2)
    close = np.abs(ext[nonempty] - out['gt_bboxes'][nonempty]).max(1) <= 3
    assert close.mean() > 0.8  # and most boxes are tight around their mask


def test_mixup_concatenates_both_images_annotations_exactly():
    a, b = bccd_sample(0), bccd_sample(1)
    seeded(0)
    out = MixUp(img_scale=(640, 480), ratio_range=(1, 1), flip_ratio=1.0)(dict(copy.deepcopy(a), mix_results=[b]))
    np.testing.assert_array_equal(out['img'], ((a['img'].astype(np.uint16) + b['img']) // 2).astype(np.uint8))
    np.testing.assert_allclose(out['gt_bboxes'], np.concatenate([a['gt_bboxes'], b['gt_bboxes']]))
    np.testing.assert_array_equal(out['gt_bboxes_labels'],
                                  np.concatenate([a['gt_bboxes_labels'], b['gt_bboxes_labels']]))
    assert len(out['gt_ignore_flags']) == len(out['gt_bboxes'])


def test_mixup_flip_mirrors_the_second_image_and_its_boxes():
    a, b = bccd_sample(0), bccd_sample(1)
    seeded(0)
    out = MixUp(img_scale=(640, 480), ratio_range=(1, 1), flip_ratio=0.0)(dict(copy.deepcopy(a), mix_results=[b]))
    flipped = b['img'][:, ::-1]
    np.testing.assert_array_equal(out['img'], ((a['img'].astype(np.uint16) + flipped) // 2).astype(np.uint8))
    fb = b['gt_bboxes'].copy()
    fb[:, [0, 2]] = 640 - b['gt_bboxes'][:, [2, 0]]
    np.testing.assert_allclose(out['gt_bboxes'][len(a['gt_bboxes']):], fb)


@pytest.mark.parametrize('poly2mask', [True, False])
def test_mixup_masks_follow_the_second_image(poly2mask):
    a, b = balloon_sample(4, poly2mask, 384), balloon_sample(7, poly2mask, 384)
    for seed in range(3):
        seeded(seed)
        out = MixUp(img_scale=(384, 384))(dict(copy.deepcopy(a), mix_results=[copy.deepcopy(b)]))
        masks = out['gt_masks']
        assert (masks.height, masks.width) == out['img'].shape[:2] == a['img'].shape[:2]
        assert len(masks) == len(out['gt_bboxes']) >= len(a['gt_bboxes'])
        np.testing.assert_allclose(out['gt_bboxes'][:len(a['gt_bboxes'])], a['gt_bboxes'])
        ext = mask_extents(masks)[len(a['gt_bboxes']):]
        box = out['gt_bboxes'][len(a['gt_bboxes']):]
        H, W = masks.height, masks.width
        whole = (box[:, 0] > 0) & (box[:, 1] > 0) & (box[:, 2] < W) & (box[:, 3] < H)
        np.testing.assert_allclose(ext[whole], box[whole], atol=3)


def _mix_dataset(pipeline):
    inner = bccd_dataset(indices=12)
    return MultiImageMixDataset(dataset=inner, pipeline=pipeline)


def test_multi_image_mix_dataset_is_seeded_and_removes_mix_results():
    ds = _mix_dataset([dict(type='Mosaic', img_scale=(160, 120)), dict(type='RandomAffine', border=(-80, -60)),
                       dict(type='MixUp', img_scale=(160, 120))])
    seeded(5, index=3)
    a = ds[3]
    seeded(5, index=3)
    b = ds[3]
    seeded(6, index=3)
    c = ds[3]
    assert 'mix_results' not in a and a['img'].shape == (120, 160, 3)  # mosaic 240x320, affine border -> 120x160
    np.testing.assert_array_equal(a['img'], b['img'])
    np.testing.assert_array_equal(a['gt_bboxes'], b['gt_bboxes'])
    assert not np.array_equal(a['img'], c['img'])
    assert len(a['gt_bboxes']) == len(a['gt_bboxes_labels']) == len(a['gt_ignore_flags']) > 0
    ds.update_skip_type_keys(['Mosaic', 'MixUp'])
    seeded(5, index=3)
    plain = ds[3]
    assert plain['img'].shape == (480 - 120, 640 - 160, 3)  # only RandomAffine with its border ran
    with pytest.raises(KeyError, match='MultiImageMixDataset'):
        Mosaic()(bccd_sample(0))


def _feed(transform, indices, seed=0):
    outs = []
    for i in indices:
        seeded(seed, index=i)
        outs.append(transform(bccd_sample(i)))
    return outs


def test_cached_mosaic_is_a_function_of_the_seeded_history():
    seq = [0, 3, 1, 4, 2, 5, 7, 6]
    a = _feed(CachedMosaic(img_scale=(160, 120), max_cached_images=5), seq)
    b = _feed(CachedMosaic(img_scale=(160, 120), max_cached_images=5), seq)
    for i in range(4):  # the cache holds <= 4 samples: inputs come back unchanged
        np.testing.assert_array_equal(a[i]['img'], bccd_sample(seq[i])['img'])
    for x, y in zip(a, b):  # same seeded sequence, fresh instances -> same outputs
        np.testing.assert_array_equal(x['img'], y['img'])
        np.testing.assert_array_equal(x['gt_bboxes'], y['gt_bboxes'])
    assert a[-1]['img'].shape == (240, 320, 3)
    # another history before the same final sample (as after a mid-epoch resume) gives another mosaic
    c = _feed(CachedMosaic(img_scale=(160, 120), max_cached_images=5), [8, 9, 10, 11] + seq[4:])
    assert not np.array_equal(a[4]['img'], c[4]['img'])  # the 5th sample mixes 3 of the 4 earlier ones
    t = CachedMosaic(img_scale=(160, 120))
    _feed(t, seq)
    t.reset_cache()
    assert t.results_cache == []


def test_cached_mixup_mixes_with_a_cached_sample():
    seq = [0, 1, 2, 3]
    t = CachedMixUp(img_scale=(640, 480), ratio_range=(1, 1), flip_ratio=1.0, max_cached_images=3)
    outs = _feed(t, seq)
    np.testing.assert_array_equal(outs[0]['img'], bccd_sample(0)['img'])
    for k in range(1, 4):
        own = bccd_sample(seq[k])
        n0 = len(own['gt_bboxes'])
        np.testing.assert_allclose(outs[k]['gt_bboxes'][:n0], own['gt_bboxes'])
        extra = outs[k]['gt_bboxes'][n0:]
        # the appended boxes are exactly those of an earlier sample still in the cache (never the sample itself)
        assert any(np.array_equal(extra, bccd_sample(j)['gt_bboxes']) for j in seq[:k])
        assert len(t.results_cache) <= 3


def _loader(dataset, seed, num_workers, persistent=False):
    from kiln.dataset.loader import build_dataloader
    cfg = dict(dataset=dataset, sampler=dict(type='DefaultSampler', shuffle=True), batch_size=2,
               num_workers=num_workers, persistent_workers=persistent and num_workers > 0,
               collate_fn=dict(type='pseudo_collate'))
    return build_dataloader(cfg, seed=seed)


def _epoch(loader, epoch):
    from kiln.dataset.loader import get_sampler
    get_sampler(loader).set_epoch(epoch)
    return [(tuple(img.shape), s.gt_instances.bboxes.numpy()) for batch in loader
            for img, s in zip(batch['inputs'], batch['data_samples'])]


def test_cached_mosaic_epochs_reproduce_with_fresh_workers():
    """The docstring's claim: with num_workers > 0 and persistent_workers=False, an epoch (also one started
    after a resume at an epoch boundary) is reproduced exactly."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='Resize', scale=(160, 120), keep_ratio=True),
                dict(type='CachedMosaic', img_scale=(160, 120), max_cached_images=5), dict(type='PackDetInputs')]
    full = _loader(bccd_dataset(pipeline=pipeline, indices=16), seed=3, num_workers=2)
    epochs = [_epoch(full, 0), _epoch(full, 1)]
    resumed = _loader(bccd_dataset(pipeline=pipeline, indices=16), seed=3, num_workers=2)
    again = _epoch(resumed, 1)
    assert len(again) == 16
    assert sum(shape == (3, 240, 320) for shape, _ in again) == 8  # each worker's samples 5..8 are mosaics
    for (sx, x), (sy, y) in zip(epochs[1], again):
        assert sx == sy
        np.testing.assert_array_equal(x, y)
    assert any(len(x) != len(y) or not np.array_equal(x, y) for (_, x), (_, y) in zip(epochs[0], epochs[1]))
