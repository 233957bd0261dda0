"""Geometric augmentations on real images: boxes, labels, ignore flags and masks move together."""
import numpy as np
import pytest
import torch
from test_det.test_transforms.aug_data import balloon_sample, bccd_sample, mask_extents, seeded
from torchvision.ops import box_iou

from kiln.det.datasets.transforms import (Expand, MinIoURandomCrop, RandomAffine, RandomChoiceResize,
                                          RandomShift)
from kiln.det.structures.mask import BitmapMasks, PolygonMasks
from kiln.registry import TRANSFORMS


def _copy(results):
    import copy
    return copy.deepcopy(results)


@pytest.mark.parametrize('poly2mask', [True, False])
def test_expand_moves_boxes_and_masks_by_the_same_offset(poly2mask):
    src = balloon_sample(4, poly2mask=poly2mask)
    h, w = src['img'].shape[:2]
    before_masks = mask_extents(src['gt_masks'])
    seeded(3)
    out = Expand(mean=(10, 20, 30), to_rgb=True, ratio_range=(1.5, 2.5), prob=1.0)(_copy(src))
    H, W = out['img'].shape[:2]
    assert 1.5 * h - 1 <= H <= 2.5 * h and out['img_shape'] == (H, W)
    assert out['gt_masks'].height == H and out['gt_masks'].width == W
    shift = out['gt_bboxes'][:, :2] - src['gt_bboxes'][:, :2]
    left, top = shift[0]
    assert (left, top) != (0, 0)
    np.testing.assert_allclose(out['gt_bboxes'] - src['gt_bboxes'], [[left, top, left, top]] * len(shift))
    np.testing.assert_allclose(mask_extents(out['gt_masks']) - before_masks,
                               [[left, top, left, top]] * len(shift), atol=1e-4)
    l, t = int(left), int(top)
    np.testing.assert_array_equal(out['img'][t:t + h, l:l + w], src['img'])
    assert out['img'][0, 0].tolist() == [30, 20, 10] or (l == 0 and t == 0)  # mean is RGB, image is BGR
    if poly2mask:
        np.testing.assert_array_equal(out['gt_masks'].masks[:, t:t + h, l:l + w], src['gt_masks'].masks)
        assert out['gt_masks'].masks.sum() == src['gt_masks'].masks.sum()


def test_expand_probability_and_determinism():
    src = bccd_sample(0)
    seeded(0)
    a = Expand(prob=0.0)(_copy(src))
    assert a['img'] is not None and a['img'].shape == src['img'].shape
    seeded(5)
    b = Expand(prob=1.0)(_copy(src))
    seeded(5)
    c = Expand(prob=1.0)(_copy(src))
    np.testing.assert_array_equal(b['img'], c['img'])
    np.testing.assert_array_equal(b['gt_bboxes'], c['gt_bboxes'])


@pytest.mark.parametrize('poly2mask', [True, False])
def test_random_shift_moves_boxes_and_masks_together(poly2mask):
    src = balloon_sample(3, poly2mask=poly2mask)  # 10 balloons
    h, w = src['img'].shape[:2]
    moved = 0
    for seed in range(6):
        seeded(seed)
        out = RandomShift(prob=1.0, max_shift_px=40, filter_thr_px=1)(_copy(src))
        assert out['img'].shape == src['img'].shape
        n = len(out['gt_bboxes'])
        assert len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags']) == len(out['gt_masks']) == n
        # recover the shift from the pixels, then check every kept box and mask moved by it
        seeded(seed)
        np.random.uniform(0, 1)
        dx, dy = int(np.random.randint(-40, 40)), int(np.random.randint(-40, 40))
        expect = src['gt_bboxes'] + np.array([dx, dy, dx, dy], np.float32)
        expect[:, 0::2] = expect[:, 0::2].clip(0, w)
        expect[:, 1::2] = expect[:, 1::2].clip(0, h)
        keep = ((expect[:, 2] - expect[:, 0]) > 1) & ((expect[:, 3] - expect[:, 1]) > 1)
        np.testing.assert_allclose(out['gt_bboxes'], expect[keep])
        ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
        ys0, xs0 = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
        np.testing.assert_array_equal(out['img'][ys, xs], src['img'][ys0, xs0])
        src_ext = mask_extents(src['gt_masks'][np.flatnonzero(keep)])
        out_ext = mask_extents(out['gt_masks'])
        exp_ext = src_ext + np.array([dx, dy, dx, dy], np.float32)
        exp_ext[:, 0::2] = exp_ext[:, 0::2].clip(0, w)
        exp_ext[:, 1::2] = exp_ext[:, 1::2].clip(0, h)
        inside = (src_ext[:, 0] + dx >= 0) & (src_ext[:, 2] + dx <= w) & (src_ext[:, 1] + dy >= 0) & \
            (src_ext[:, 3] + dy <= h)
        np.testing.assert_allclose(out_ext[inside], exp_ext[inside], atol=1e-4)
        moved += (dx, dy) != (0, 0)
    assert moved >= 5


def test_random_shift_keeps_image_when_no_box_survives():
    src = bccd_sample(0)
    src['gt_bboxes'] = np.array([[0, 0, 2, 2]], np.float32)
    src['gt_bboxes_labels'] = np.array([1])
    src['gt_ignore_flags'] = np.array([False])
    for seed in range(5):
        seeded(seed)
        out = RandomShift(prob=1.0, max_shift_px=32, filter_thr_px=4)(_copy(src))
        np.testing.assert_array_equal(out['img'], src['img'])
        np.testing.assert_array_equal(out['gt_bboxes'], src['gt_bboxes'])


@pytest.mark.parametrize('poly2mask', [True, False])
def test_random_affine_without_rotation_moves_boxes_like_masks(poly2mask):
    src = balloon_sample(4, poly2mask=poly2mask)
    t = RandomAffine(max_rotate_degree=0, max_shear_degree=0, scaling_ratio_range=(0.7, 1.3),
                     max_translate_ratio=0.1, border_val=(0, 0, 0))
    for seed in range(3):
        seeded(seed)
        out = t(_copy(src))
        H, W = out['img'].shape[:2]
        assert (H, W) == src['img'].shape[:2] and out['gt_masks'].height == H
        m = out['homography_matrix']
        s, tx, ty = m[0, 0], m[0, 2], m[1, 2]
        assert m[0, 1] == pytest.approx(0, abs=1e-6) and m[1, 1] == pytest.approx(s)
        expect = src['gt_bboxes'] * s + np.array([tx, ty, tx, ty], np.float32)
        expect[:, 0::2] = expect[:, 0::2].clip(0, W)
        expect[:, 1::2] = expect[:, 1::2].clip(0, H)
        keep = (expect[:, 0] < W) & (expect[:, 1] < H) & (expect[:, 2] > 0) & (expect[:, 3] > 0)
        np.testing.assert_allclose(out['gt_bboxes'], expect[keep], rtol=1e-5, atol=1e-3)
        assert len(out['gt_masks']) == len(out['gt_bboxes']) == len(out['gt_bboxes_labels'])
        # the masks' extents moved like the boxes (nearest-neighbour sampling: within 1.5 px)
        # (masks cut by the border lose extent along the other axis too: compare those fully inside)
        src_ext = mask_extents(src['gt_masks'])[keep] * s + np.array([tx, ty, tx, ty], np.float32)
        inside = (src_ext[:, 0] >= 0) & (src_ext[:, 1] >= 0) & (src_ext[:, 2] <= W) & (src_ext[:, 3] <= H)
        assert inside.any()
        np.testing.assert_allclose(mask_extents(out['gt_masks'])[inside], src_ext[inside],
                                   atol=1.5 * max(s, 1) + 0.5)


def test_random_affine_rotation_keeps_masks_inside_boxes_and_drops_outside():
    src = balloon_sample(3)
    seeded(11)
    out = RandomAffine(max_rotate_degree=30, max_shear_degree=5, max_translate_ratio=0.3,
                       scaling_ratio_range=(0.8, 1.2))(_copy(src))
    ext = mask_extents(out['gt_masks'])
    nonempty = out['gt_masks'].areas > 0
    b = out['gt_bboxes']
    assert nonempty.sum() >= 1
    # a box is the projected corners of the source box: it contains the (rotated) mask's extent
    assert np.all(ext[nonempty, :2] >= b[nonempty, :2] - 2) and np.all(ext[nonempty, 2:] <= b[nonempty, 2:] + 2)
    H, W = out['img'].shape[:2]
    assert np.all(b[:, 0] < W) and np.all(b[:, 2] > 0) and np.all(b[:, 0::2] <= W) and np.all(b[:, 1::2] <= H)
    # pixels: the warp is cv2.warpPerspective of the image with the same matrix
    import cv2
    ref = cv2.warpPerspective(src['img'], out['homography_matrix'], (W, H), borderValue=(114, 114, 114))
    np.testing.assert_array_equal(out['img'], ref)


def test_random_affine_border_gives_smaller_output_and_masks_raise_nothing():
    src = balloon_sample(4)
    h, w = src['img'].shape[:2]
    seeded(1)
    out = RandomAffine(border=(-w // 4, -h // 4))(_copy(src))
    assert out['img'].shape[:2] == (h - 2 * (h // 4), w - 2 * (w // 4))
    assert isinstance(out['gt_masks'], BitmapMasks) and out['gt_masks'].height == out['img'].shape[0]


def test_min_iou_random_crop_respects_iou_and_centres():
    src = bccd_sample(1)
    big = np.argmax((src['gt_bboxes'][:, 2] - src['gt_bboxes'][:, 0]) * (src['gt_bboxes'][:, 3] - src['gt_bboxes'][:, 1]))
    for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags'):
        src[key] = src[key][[big]]
    import cv2
    t = MinIoURandomCrop(min_ious=(0.3,), min_crop_size=0.3)
    t.sample_mode = (0.3,)  # force the constraint on every draw
    cropped = 0
    for seed in range(6):
        seeded(seed)
        out = t(_copy(src))
        img = out['img']
        res = cv2.matchTemplate(src['img'], np.ascontiguousarray(img[:32, :32]), cv2.TM_SQDIFF)
        x0, y0 = cv2.minMaxLoc(res)[2]
        h, w = img.shape[:2]
        np.testing.assert_array_equal(src['img'][y0:y0 + h, x0:x0 + w], img)  # the crop window is found
        patch = np.array([[x0, y0, x0 + w, y0 + h]], np.float32)
        assert box_iou(torch.from_numpy(patch), torch.from_numpy(src['gt_bboxes'])).min() >= 0.3
        expect = src['gt_bboxes'] - np.array([x0, y0, x0, y0], np.float32)
        expect[:, 0::2] = expect[:, 0::2].clip(0, w)
        expect[:, 1::2] = expect[:, 1::2].clip(0, h)
        np.testing.assert_allclose(out['gt_bboxes'], expect)
        assert out['gt_bboxes_labels'].tolist() == src['gt_bboxes_labels'].tolist()
        cropped += (h, w) != src['img'].shape[:2]
    assert cropped >= 5


def test_min_iou_random_crop_crops_masks_with_the_boxes():
    src = balloon_sample(3)
    for seed in range(4):
        seeded(seed)
        out = MinIoURandomCrop()(_copy(src))
        n = len(out['gt_bboxes'])
        assert len(out['gt_masks']) == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags']) == n
        assert (out['gt_masks'].height, out['gt_masks'].width) == out['img'].shape[:2]
        # a kept instance's mask extent is its source mask extent moved like its box (both clipped)
        if n:
            ext = mask_extents(out['gt_masks'])
            b = out['gt_bboxes']
            assert np.all(np.abs(ext - b) <= 3)


def test_random_choice_resize_picks_one_of_the_scales():
    src = bccd_sample(0)
    seen = set()
    t = TRANSFORMS.build(dict(type='RandomChoiceResize', scales=[(320, 240), (480, 360), (160, 120)],
                              keep_ratio=True))
    for seed in range(8):
        seeded(seed)
        out = t(_copy(src))
        idx = out['scale_idx']
        w, h = [(320, 240), (480, 360), (160, 120)][idx]
        assert out['img'].shape[:2] == (h, w)
        np.testing.assert_allclose(out['gt_bboxes'], src['gt_bboxes'] * w / 640, rtol=1e-5)
        seen.add(idx)
    assert len(seen) >= 2
    with pytest.raises(ValueError, match='scales'):
        RandomChoiceResize(scales=[])


def test_transforms_are_registered_and_deterministic():
    src = balloon_sample(4, poly2mask=False)
    for cfg in [dict(type='RandomAffine'), dict(type='RandomShift', prob=1.0), dict(type='Expand', prob=1.0),
                dict(type='MinIoURandomCrop')]:
        t = TRANSFORMS.build(cfg)
        seeded(7, index=3)
        a = t(_copy(src))
        seeded(7, index=3)
        b = t(_copy(src))
        np.testing.assert_array_equal(a['img'], b['img'])
        np.testing.assert_array_equal(a['gt_bboxes'], b['gt_bboxes'])
        assert isinstance(a['gt_masks'], PolygonMasks) and len(a['gt_masks']) == len(a['gt_bboxes'])
