from pathlib import Path

import numpy as np
import pytest

from kiln.det.datasets.transforms import (LoadAnnotations, LoadImageFromFile, RandomResize, Resize,
                                          rescale_size)
from kiln.registry import TRANSFORMS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
BOXES = [[10, 20, 110, 220], [600, 400, 640, 480]]


def _bccd_results() -> dict:
    results = LoadImageFromFile()(dict(img_path=str(BCCD / 'JPEGImages' / 'BloodImage_00001.jpg'),
                                       instances=[dict(bbox=b, bbox_label=0, ignore_flag=0) for b in BOXES]))
    return LoadAnnotations()(results)


def test_rescale_size_fits_long_and_short_edge():
    assert rescale_size((640, 480), (1333, 800)) == (1067, 800)
    assert rescale_size((640, 480), (800, 1333)) == (1067, 800)  # order of the pair does not matter
    assert rescale_size((480, 640), (1333, 800)) == (800, 1067)  # portrait: short edge limits
    assert rescale_size((2000, 500), (1333, 800)) == (1333, 333)  # long edge limits
    assert rescale_size((640, 480), 0.5) == (320, 240)


def test_keep_ratio_resize_of_a_real_image():
    results = TRANSFORMS.build(dict(type='Resize', scale=(1333, 800), keep_ratio=True))(_bccd_results())
    assert results['img'].shape == (800, 1067, 3) and results['img'].dtype == np.uint8
    assert results['img_shape'] == (800, 1067)
    assert results['ori_shape'] == (480, 640)
    w_scale, h_scale = results['scale_factor']
    assert w_scale == pytest.approx(1067 / 640) and h_scale == pytest.approx(800 / 480)
    assert results['keep_ratio'] is True
    expected = np.array(BOXES, dtype=np.float32) * [w_scale, h_scale, w_scale, h_scale]
    np.testing.assert_allclose(results['gt_bboxes'], expected, rtol=1e-5)
    assert results['gt_bboxes'].dtype == np.float32


def test_fixed_size_resize_and_mean_color_preserved():
    before = _bccd_results()
    mean = before['img'].reshape(-1, 3).mean(0)
    results = Resize(scale=(320, 100), keep_ratio=False)(before)
    assert results['img'].shape == (100, 320, 3)
    assert results['scale_factor'] == pytest.approx((0.5, 100 / 480))
    np.testing.assert_allclose(results['img'].reshape(-1, 3).mean(0), mean, atol=2.0)  # same picture, smaller


def test_scale_factor_resize_composes_and_clips():
    results = Resize(scale_factor=0.5)(_bccd_results())
    assert results['img_shape'] == (240, 320)
    results = Resize(scale_factor=2.0)(results)
    assert results['img_shape'] == (480, 640)
    assert results['scale_factor'] == pytest.approx((1.0, 1.0))  # 0.5 * 2: boxes / scale_factor = original
    np.testing.assert_allclose(results['gt_bboxes'], BOXES)
    # clip_object_border: boxes stay inside the resized image
    r = _bccd_results()
    r['gt_bboxes'] = np.array([[-10, -10, 700, 500]], dtype=np.float32)
    np.testing.assert_allclose(Resize(scale=(320, 240))(r)['gt_bboxes'], [[0, 0, 320, 240]])
    r = _bccd_results()
    r['gt_bboxes'] = np.array([[-10, -10, 700, 500]], dtype=np.float32)
    np.testing.assert_allclose(Resize(scale=(320, 240), clip_object_border=False)(r)['gt_bboxes'],
                               [[-5, -5, 350, 250]])


def test_float_image_uses_torch_path():
    img = np.random.RandomState(0).rand(30, 40, 3).astype(np.float32) * 255
    out = Resize(scale=(20, 15), keep_ratio=False)(dict(img=img))
    assert out['img'].dtype == np.float32 and out['img'].shape == (15, 20, 3)
    assert out['img'].mean() == pytest.approx(img.mean(), rel=0.05)


def test_random_resize_ratio_range_and_two_scales():
    np.random.seed(0)
    rr = TRANSFORMS.build(dict(type='RandomResize', scale=(640, 480), ratio_range=(0.5, 1.0), keep_ratio=True))
    sizes = set()
    for _ in range(5):
        r = rr(_bccd_results())
        h, w = r['img_shape']
        assert 240 <= h <= 480 and 320 <= w <= 640
        assert w / h == pytest.approx(640 / 480, rel=0.01)
        sizes.add((h, w))
    assert len(sizes) > 1
    rr = RandomResize(scale=[(1333, 400), (1333, 480)], keep_ratio=True)
    for _ in range(5):
        h, w = rr(_bccd_results())['img_shape']
        assert 400 <= h <= 480
    with pytest.raises(ValueError, match='RandomResize'):
        RandomResize(scale=(640, 480))
    with pytest.raises(ValueError, match='scale'):
        Resize()
