"""RandomResize, RandomChoiceResize, RandomCrop (every crop_type, allow_negative_crop, recompute_bbox), Pad (size,
pad_to_square) and the cached mixing transforms on real images (balloon polygon masks, BCCD boxes): the pixels,
boxes and masks after the transform are checked against what the drawn parameters say, not only the shapes."""
import copy

import cv2
import numpy as np
import pytest
from test_det.test_transforms.aug_data import balloon_sample, bccd_sample, mask_extents, seeded

from kiln.det.datasets.transforms import CachedMixUp, CachedMosaic, Pad, RandomChoiceResize, RandomCrop, RandomResize
from kiln.det.datasets.transforms.resize import rescale_size
from kiln.det.structures.mask import BitmapMasks, PolygonMasks


def _clipped(boxes, w, h):
    boxes = boxes.astype(np.float32).copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


# ---------------------------------------------------------------------------------------------- resizing
@pytest.mark.parametrize('poly2mask', [True, False])
def test_random_resize_ratio_range_scales_pixels_boxes_and_masks(poly2mask):
    src = balloon_sample(3, poly2mask=poly2mask)  # 10 balloons, long edge 512
    h, w = src['img'].shape[:2]
    src_ext = mask_extents(src['gt_masks'])
    t = RandomResize(scale=(512, 512), ratio_range=(0.5, 1.5), keep_ratio=True)
    sizes = set()
    for seed in range(4):
        seeded(seed)
        ratio = np.random.random_sample() * 1.0 + 0.5  # the draw RandomResize makes
        drawn = (int(512 * ratio), int(512 * ratio))
        seeded(seed)
        out = t(copy.deepcopy(src))
        new_w, new_h = rescale_size((w, h), drawn)
        assert out['scale'] == drawn and out['img_shape'] == (new_h, new_w) == out['img'].shape[:2]
        np.testing.assert_array_equal(out['img'], cv2.resize(src['img'], (new_w, new_h), interpolation=cv2.INTER_LINEAR))
        sx, sy = new_w / w, new_h / h
        np.testing.assert_allclose(out['gt_bboxes'], _clipped(src['gt_bboxes'] * [sx, sy, sx, sy], new_w, new_h),
                                   rtol=1e-5, atol=1e-3)
        masks = out['gt_masks']
        assert isinstance(masks, BitmapMasks if poly2mask else PolygonMasks)
        assert (masks.height, masks.width) == (new_h, new_w) and len(masks) == len(out['gt_bboxes'])
        # each mask's extent scaled like its box (nearest-neighbour bitmaps: within one source pixel)
        np.testing.assert_allclose(mask_extents(masks), src_ext * [sx, sy, sx, sy], atol=max(sx, sy) + 1)
        sizes.add((new_h, new_w))
    assert len(sizes) == 4


def test_random_resize_two_scales_on_bccd_scales_the_boxes():
    src = bccd_sample(2)
    t = RandomResize(scale=[(1333, 400), (1333, 560)], keep_ratio=True)
    for seed in range(4):
        seeded(seed)
        np.random.randint(1333, 1334)
        edge = int(np.random.randint(400, 561))
        seeded(seed)
        out = t(copy.deepcopy(src))
        new_w, new_h = rescale_size((640, 480), (1333, edge))
        assert out['img_shape'] == (new_h, new_w) and 400 <= new_h <= 560
        s = np.array([new_w / 640, new_h / 480] * 2, np.float32)
        np.testing.assert_allclose(out['gt_bboxes'], _clipped(src['gt_bboxes'] * s, new_w, new_h), rtol=1e-5)
        assert out['gt_bboxes_labels'].tolist() == src['gt_bboxes_labels'].tolist()


def test_random_choice_resize_carries_masks_with_the_boxes():
    src = balloon_sample(4, poly2mask=True)
    h, w = src['img'].shape[:2]
    scales = [(300, 200), (600, 420)]
    t = RandomChoiceResize(scales=scales, keep_ratio=False)
    seen = set()
    for seed in range(6):
        seeded(seed)
        out = t(copy.deepcopy(src))
        new_w, new_h = scales[out['scale_idx']]
        masks = out['gt_masks']
        assert out['img'].shape[:2] == (new_h, new_w) == (masks.height, masks.width)
        sx, sy = new_w / w, new_h / h
        np.testing.assert_allclose(out['gt_bboxes'], src['gt_bboxes'] * [sx, sy, sx, sy], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(mask_extents(masks), mask_extents(src['gt_masks']) * [sx, sy, sx, sy],
                                   atol=max(sx, sy) + 1)
        seen.add(out['scale_idx'])
    assert seen == {0, 1}


# ---------------------------------------------------------------------------------------------- RandomCrop
def _crop_window(crop_type, crop_size, h, w):
    """Replays RandomCrop's draws (MMDetection's order) on the seeded global generator: (x1, y1, x2, y2)."""
    if crop_type == 'absolute_range':
        ch = int(np.random.randint(min(h, crop_size[0]), min(h, crop_size[1]) + 1))
        cw = int(np.random.randint(min(w, crop_size[0]), min(w, crop_size[1]) + 1))
    elif crop_type == 'relative':
        cw, ch = int(w * crop_size[0] + 0.5), int(h * crop_size[1] + 0.5)
    else:  # relative_range: crop_size[0] bounds the height ratio, crop_size[1] the width ratio
        low = np.asarray(crop_size, dtype=np.float32)
        rh, rw = low + np.random.rand(2) * (1 - low)
        ch, cw = int(h * rh + 0.5), int(w * rw + 0.5)
    y1 = int(np.random.randint(0, max(h - ch, 0) + 1))
    x1 = int(np.random.randint(0, max(w - cw, 0) + 1))
    return x1, y1, x1 + cw, y1 + ch


@pytest.mark.parametrize('crop_type, crop_size', [('absolute_range', (120, 300)), ('relative', (0.5, 0.7)),
                                                  ('relative_range', (0.4, 0.6))])
def test_random_crop_types_crop_pixels_boxes_and_masks(crop_type, crop_size):
    src = balloon_sample(3, poly2mask=True)
    h, w = src['img'].shape[:2]
    full = src['gt_masks'].masks
    t = RandomCrop(crop_size=crop_size, crop_type=crop_type, allow_negative_crop=True)
    windows = set()
    for seed in range(6):
        seeded(seed)
        x1, y1, x2, y2 = _crop_window(crop_type, crop_size, h, w)
        seeded(seed)
        out = t(copy.deepcopy(src))
        ch, cw = y2 - y1, x2 - x1
        if crop_type == 'absolute_range':
            assert 120 <= ch <= 300 and 120 <= cw <= 300
        elif crop_type == 'relative':
            assert (ch, cw) == (int(h * 0.7 + 0.5), int(w * 0.5 + 0.5))
        else:
            assert 0.4 * h - 1 <= ch <= h and 0.6 * w - 1 <= cw <= w
        assert out['img_shape'] == (ch, cw)
        np.testing.assert_array_equal(out['img'], src['img'][y1:y2, x1:x2])
        boxes = _clipped(src['gt_bboxes'] - np.array([x1, y1, x1, y1], np.float32), cw, ch)
        valid = (boxes[:, 0] < cw) & (boxes[:, 1] < ch) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        np.testing.assert_allclose(out['gt_bboxes'], boxes[valid])
        assert out['gt_bboxes_labels'].tolist() == src['gt_bboxes_labels'][valid].tolist()
        assert out['gt_ignore_flags'].tolist() == src['gt_ignore_flags'][valid].tolist()
        np.testing.assert_array_equal(out['gt_masks'].masks, full[valid][:, y1:y2, x1:x2])
        windows.add((x1, y1, x2, y2))
    assert len(windows) >= 4


def test_random_crop_negative_crop_allowed_or_refused_and_recompute_bbox():
    src = balloon_sample(4, poly2mask=True)
    h, w = src['img'].shape[:2]
    keep = [int(np.argmin(src['gt_bboxes'][:, 0]))]  # one balloon, cropped windows often miss it
    one = dict(src, gt_bboxes=src['gt_bboxes'][keep], gt_bboxes_labels=src['gt_bboxes_labels'][keep],
               gt_ignore_flags=src['gt_ignore_flags'][keep], gt_masks=src['gt_masks'][keep])
    box = one['gt_bboxes'][0]
    allowed = RandomCrop(crop_size=(60, 60), allow_negative_crop=True)
    refused = RandomCrop(crop_size=(60, 60))
    misses = 0
    for seed in range(40):
        seeded(seed)
        x1, y1, x2, y2 = _crop_window('absolute_range', (60, 60), h, w)
        hit = box[0] < x2 and box[2] > x1 and box[1] < y2 and box[3] > y1
        seeded(seed)
        out = allowed(copy.deepcopy(one))
        np.testing.assert_array_equal(out['img'], src['img'][y1:y2, x1:x2])
        seeded(seed)
        assert (refused(copy.deepcopy(one)) is None) == (not hit)
        if not hit:  # the negative crop is kept: no instance left, masks on the crop's canvas
            misses += 1
            assert out['gt_bboxes'].shape == (0, 4) and len(out['gt_bboxes_labels']) == 0
            assert len(out['gt_masks']) == 0 and (out['gt_masks'].height, out['gt_masks'].width) == (60, 60)
    assert 5 <= misses < 40
    # recompute_bbox: the boxes become the extents of the cropped masks
    seeded(3)
    out = RandomCrop(crop_size=(200, 150), recompute_bbox=True, allow_negative_crop=True)(copy.deepcopy(src))
    np.testing.assert_allclose(out['gt_bboxes'], out['gt_masks'].get_bboxes().numpy())


# ---------------------------------------------------------------------------------------------- Pad
@pytest.mark.parametrize('poly2mask', [True, False])
def test_pad_to_a_fixed_size_and_to_a_square_keeps_boxes_and_pads_masks(poly2mask):
    src = balloon_sample(4, poly2mask=poly2mask)
    h, w = src['img'].shape[:2]
    assert h != w
    before = src['gt_masks'].to_ndarray()
    for cfg, (ph, pw) in [(dict(size=(w + 37, h + 50)), (h + 50, w + 37)),
                          (dict(pad_to_square=True), (max(h, w), max(h, w))),
                          (dict(pad_to_square=True, size_divisor=96), (-(-max(h, w) // 96) * 96,) * 2)]:
        out = Pad(pad_val=dict(img=114, masks=0), **cfg)(copy.deepcopy(src))
        assert out['img'].shape[:2] == out['img_shape'] == out['pad_shape'] == (ph, pw), cfg
        np.testing.assert_array_equal(out['img'][:h, :w], src['img'])
        assert (out['img'][h:] == 114).all() and (out['img'][:, w:] == 114).all()
        np.testing.assert_array_equal(out['gt_bboxes'], src['gt_bboxes'])  # boxes do not move
        masks = out['gt_masks']
        assert isinstance(masks, BitmapMasks if poly2mask else PolygonMasks)
        assert (masks.height, masks.width) == (ph, pw)
        dense = masks.to_ndarray()
        np.testing.assert_array_equal(dense[:, :h, :w], before)
        assert not dense[:, h:].any() and not dense[:, :, w:].any()
    with pytest.raises(ValueError, match='larger than'):
        Pad(size=(w - 1, h))(copy.deepcopy(src))


# ---------------------------------------------------------------------------------------------- cached mixing
def _quadrant_source(quad, candidates):
    """Index in ``candidates`` of the BCCD sample whose 160x120 resize is the quadrant's pixels."""
    hits = [k for k, s in enumerate(candidates)
            if np.array_equal(quad, cv2.resize(s['img'], (160, 120), interpolation=cv2.INTER_LINEAR))]
    assert len(hits) >= 1
    return hits[0]


def test_cached_mosaic_boxes_are_those_of_the_cached_images_in_their_quadrants():
    seq = [0, 3, 1, 4, 2, 5]
    samples = {i: bccd_sample(i) for i in seq}
    t = CachedMosaic(img_scale=(160, 120), center_ratio_range=(1.0, 1.0), max_cached_images=10)
    outs = []
    for i in seq:
        seeded(0, index=i)
        outs.append(t(copy.deepcopy(samples[i])))
    mosaics = 0
    for k, out in enumerate(outs):
        if k < 4:
            continue  # the cache holds <= 4 samples: input returned unchanged (tested in test_mix.py)
        mosaics += 1
        assert out['img'].shape == (240, 320, 3)
        earlier = [samples[i] for i in seq[:k]]  # cached before this sample (never the sample itself)
        expect_boxes, expect_labels = [], []
        for n, (ox, oy) in enumerate([(0, 0), (160, 0), (0, 120), (160, 120)]):
            quad = out['img'][oy:oy + 120, ox:ox + 160]
            s = samples[seq[k]] if n == 0 else earlier[_quadrant_source(quad, earlier)]
            if n == 0:
                np.testing.assert_array_equal(quad, cv2.resize(s['img'], (160, 120), interpolation=cv2.INTER_LINEAR))
            expect_boxes.append(s['gt_bboxes'] * np.float32(0.25) + np.array([ox, oy, ox, oy], np.float32))
            expect_labels.append(s['gt_bboxes_labels'])
        np.testing.assert_allclose(out['gt_bboxes'], np.concatenate(expect_boxes), rtol=1e-6)
        np.testing.assert_array_equal(out['gt_bboxes_labels'], np.concatenate(expect_labels))
        assert len(out['gt_ignore_flags']) == len(out['gt_bboxes'])
    assert mosaics == 2


@pytest.mark.parametrize('transform', ['CachedMosaic', 'CachedMixUp'])
def test_cached_transforms_carry_masks_with_their_boxes(transform):
    samples = [balloon_sample(i, poly2mask=True, long_edge=256) for i in (3, 4, 7, 0, 5, 6)]
    if transform == 'CachedMosaic':
        t = CachedMosaic(img_scale=(256, 256), max_cached_images=8)
    else:
        t = CachedMixUp(img_scale=(256, 256), max_cached_images=8)
    out = None
    for k, s in enumerate(samples):
        seeded(1, index=k)
        out = t(copy.deepcopy(s))
    own = samples[-1]
    masks = out['gt_masks']
    assert isinstance(masks, BitmapMasks) and (masks.height, masks.width) == out['img'].shape[:2]
    assert len(masks) == len(out['gt_bboxes']) == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags'])
    assert len(masks) > len(own['gt_bboxes']) if transform == 'CachedMixUp' else len(masks) > 0
    ext, b = mask_extents(masks), out['gt_bboxes']
    nonempty = masks.areas > 0
    assert nonempty.sum() >= len(masks) // 2
    # every mask lies within its box, and most boxes are tight around their mask (resize rounding aside)
    assert np.all(ext[nonempty, :2] >= b[nonempty, :2] - 3) and np.all(ext[nonempty, 2:] <= b[nonempty, 2:] + 3)
    assert (np.abs(ext[nonempty] - b[nonempty]).max(1) <= 3).mean() > 0.8


@pytest.mark.parametrize('transform', ['YOLOXHSVRandomAug', 'CutOut', 'PhotoMetricDistortion'])
def test_pixel_only_transforms_leave_boxes_and_masks_of_a_balloon_image_untouched(transform):
    from kiln.registry import TRANSFORMS
    cfg = dict(type=transform)
    if transform == 'CutOut':
        cfg.update(n_holes=(3, 5), cutout_ratio=[(0.1, 0.1), (0.2, 0.15)])
    t = TRANSFORMS.build(cfg)
    for poly2mask in (True, False):
        src = balloon_sample(7, poly2mask=poly2mask)
        changed = 0
        for seed in range(3):
            seeded(seed)
            out = t(copy.deepcopy(src))
            assert out['img'].shape == src['img'].shape
            np.testing.assert_array_equal(out['gt_bboxes'], src['gt_bboxes'])
            np.testing.assert_array_equal(out['gt_bboxes_labels'], src['gt_bboxes_labels'])
            np.testing.assert_array_equal(out['gt_ignore_flags'], src['gt_ignore_flags'])
            assert type(out['gt_masks']) is type(src['gt_masks'])
            np.testing.assert_array_equal(out['gt_masks'].to_ndarray(), src['gt_masks'].to_ndarray())
            changed += np.abs(out['img'].astype(np.float32) - src['img']).mean() > 0.5
        assert changed >= 2
