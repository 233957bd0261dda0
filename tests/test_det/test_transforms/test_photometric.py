"""Pixel-only augmentations on real images: pixels change, geometry does not, same seed -> same output."""
import cv2
import numpy as np
import pytest
from test_det.test_transforms.aug_data import balloon_sample, bccd_sample, seeded

from kiln.det.datasets.transforms import CutOut, PhotoMetricDistortion, YOLOXHSVRandomAug


def _geometry(results):
    return (results['gt_bboxes'].copy(), results['gt_bboxes_labels'].copy(), results['gt_ignore_flags'].copy(),
            results['gt_masks'].masks.copy() if 'gt_masks' in results else None)


def _same_geometry(a, b):
    for x, y in zip(a, b):
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(x, y)


def test_photometric_distortion_changes_pixels_not_geometry():
    src = balloon_sample(4)
    geo = _geometry(src)
    changed = 0
    for seed in range(4):
        seeded(seed)
        out = PhotoMetricDistortion()(dict(src, img=src['img'].copy()))
        assert out['img'].dtype == np.float32 and out['img'].shape == src['img'].shape
        _same_geometry(_geometry(out), geo)
        changed += np.abs(out['img'] - src['img']).mean() > 1
        seeded(seed)
        again = PhotoMetricDistortion()(dict(src, img=src['img'].copy()))
        np.testing.assert_array_equal(out['img'], again['img'])
    assert changed >= 3
    assert out['img'] is not src['img'] and src['img'].dtype == np.uint8  # input untouched


def test_photometric_distortion_brightness_only_is_a_shift():
    src = bccd_sample(2)
    t = PhotoMetricDistortion(brightness_delta=32, contrast_range=(1, 1), saturation_range=(1, 1), hue_delta=0)
    for seed in range(6):
        seeded(seed)
        flags = [np.random.randint(2) for _ in range(6)]
        delta = np.random.uniform(-32, 32)
        np.random.uniform(1, 1), np.random.uniform(1, 1), np.random.uniform(0, 0)
        perm = np.random.permutation(3)
        seeded(seed)
        out = t(dict(src, img=src['img'].copy()))['img']
        expect = src['img'].astype(np.float32) + (delta if flags[1] else 0)
        if flags[5]:
            expect = expect[..., perm]
        # the HSV round trip of positive pixels is exact to float precision
        positive = (expect > 0.5).all(-1)
        np.testing.assert_allclose(out[positive], expect[positive], atol=0.05)


def _yolox_reference(img, gains):
    """MMDetection 3.3's int16 arithmetic, for comparison."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def test_yolox_hsv_matches_int16_reference_and_keeps_geometry():
    src = bccd_sample(3)
    geo = _geometry(src)
    t = YOLOXHSVRandomAug(hue_delta=5, saturation_delta=30, value_delta=30)
    nonzero = 0
    for seed in range(5):
        seeded(seed)
        gains = np.random.uniform(-1, 1, 3) * [5, 30, 30]
        gains = (gains * np.random.randint(0, 2, 3)).astype(np.int16)
        seeded(seed)
        out = t(dict(src, img=src['img'].copy()))
        np.testing.assert_array_equal(out['img'], _yolox_reference(src['img'], gains))
        _same_geometry(_geometry(out), geo)
        nonzero += bool(np.any(gains))
    assert nonzero >= 3
    with pytest.raises(TypeError, match='uint8'):
        t(dict(img=src['img'].astype(np.float32)))


def test_cutout_fills_holes_only():
    src = bccd_sample(0)
    geo = _geometry(src)
    seeded(1)
    out = CutOut(n_holes=(2, 4), cutout_shape=[(30, 20), (10, 10)], fill_in=(1, 2, 3))(
        dict(src, img=src['img'].copy()))
    filled = (out['img'] == [1, 2, 3]).all(-1)
    changed = (out['img'] != src['img']).any(-1)
    assert filled.sum() >= 100 and not (changed & ~filled).any()
    _same_geometry(_geometry(out), geo)
    seeded(1)
    again = CutOut(n_holes=(2, 4), cutout_shape=[(30, 20), (10, 10)], fill_in=(1, 2, 3))(
        dict(src, img=src['img'].copy()))
    np.testing.assert_array_equal(out['img'], again['img'])
    seeded(2)
    ratio = CutOut(n_holes=1, cutout_ratio=(0.5, 0.5))(dict(src, img=src['img'].copy()))
    assert ((ratio['img'] == 0).all(-1)).sum() > 0
    with pytest.raises(ValueError, match='exactly one'):
        CutOut(n_holes=1, cutout_shape=(4, 4), cutout_ratio=(0.1, 0.1))
