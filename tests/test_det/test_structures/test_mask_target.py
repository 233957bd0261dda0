"""mask_target: gt masks cropped to positive RoIs and RoI-aligned to mask_size (hand-checked cases)."""
import numpy as np
import pytest
import torch

from kiln.det.structures.mask import BitmapMasks, PolygonMasks
from kiln.det.structures.mask.mask_target import mask_target, mask_target_single


def square_masks():
    m = np.zeros((2, 20, 20), dtype=np.uint8)
    m[0, 5:15, 5:15] = 1  # pixels 5..14
    m[1, :, :10] = 1  # left half
    return BitmapMasks(m, 20, 20)


def test_roi_on_object_gives_full_target_and_whole_image_roi_is_hand_checkable():
    gt = square_masks()
    # RoI on the square: the outer cells sample 0.178 px outside the square border -> value 0.678 (kept), but
    # the four corner cells get 0.678 ** 2 = 0.46 < 0.5.
    t = mask_target_single(torch.tensor([[5., 5., 15., 15.]]), torch.tensor([0]), gt, dict(mask_size=28))
    assert t.dtype == torch.float32 and t.shape == (1, 28, 28)
    assert t.sum() == 28 * 28 - 4 and t[0, 0, 0] == 0 and t[0, 27, 27] == 0
    # RoI = the whole 20x20 image: output cell i samples y = (i + 0.5) * 20 / 28 - 0.5 (aligned RoIAlign),
    # which is >= 0.5 inside the square (pixel centres 5..14) for y in [4.5, 14.5], i.e. cells 7..20.
    t = mask_target_single(torch.tensor([[0., 0., 20., 20.]]), torch.tensor([0]), gt, dict(mask_size=28))[0]
    expected = torch.zeros(28, 28)
    expected[7:21, 7:21] = 1
    assert torch.equal(t, expected)
    # proposals are clipped to the canvas first: an RoI spilling outside gives the same target
    t2 = mask_target_single(torch.tensor([[-10., -7., 30., 25.]]), torch.tensor([0]), gt, dict(mask_size=28))[0]
    assert torch.equal(t2, expected)


def test_assigned_indices_rectangular_size_and_soft_targets():
    gt = square_masks()
    t = mask_target_single(torch.tensor([[0., 0., 20., 20.], [0., 0., 20., 20.]]), torch.tensor([1, 0]), gt,
                           dict(mask_size=(14, 28)))
    assert t.shape == (2, 14, 28)
    assert t[0, :, :14].eq(1).all() and t[0, :, 14:].eq(0).all()  # left half of mask 1
    soft = mask_target_single(torch.tensor([[0., 0., 20., 20.]]), torch.tensor([0]), gt,
                              dict(mask_size=28, soft_mask_target=True))[0]
    assert soft.unique().numel() > 2 and soft.max() == 1 and soft.min() == 0


def test_multi_image_concat_and_empty():
    gt = square_masks()
    out = mask_target([torch.tensor([[5., 5., 15., 15.]]), torch.zeros(0, 4), torch.tensor([[0., 0., 10., 20.]])],
                      [torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.tensor([1])],
                      [gt, gt, gt], dict(mask_size=28))
    assert out.shape == (2, 28, 28) and out.sum() >= 2 * (28 * 28 - 4)
    with pytest.raises(ValueError, match='one of each per image'):
        mask_target([torch.zeros(0, 4)], [], [gt], dict(mask_size=28))
    with pytest.raises(KeyError, match='mask_size'):
        mask_target_single(torch.ones(1, 4), torch.tensor([0]), gt, dict())
    with pytest.raises(IndexError, match='2 ground-truth masks'):
        mask_target_single(torch.ones(1, 4), torch.tensor([2]), gt, dict(mask_size=28))


def test_polygon_masks_match_bitmap_targets():
    # a square polygon with corners at pixel borders 5 and 15 covers the same pixels as the bitmap square
    poly = PolygonMasks([[np.array([5., 5., 15., 5., 15., 15., 5., 15.])]], 20, 20)
    rois = torch.tensor([[5., 5., 15., 15.], [3., 4., 17., 16.]])
    t_poly = mask_target_single(rois, torch.tensor([0, 0]), poly, dict(mask_size=28))
    t_bit = mask_target_single(rois, torch.tensor([0, 0]), square_masks(), dict(mask_size=28))
    assert t_poly.shape == (2, 28, 28)
    assert t_poly[0].sum() >= 28 * 28 - 4
    assert (t_poly[1] != t_bit[1]).float().mean() < 0.1
