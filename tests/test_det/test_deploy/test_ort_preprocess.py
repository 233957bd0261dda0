"""``ORTDetector``'s resize rule and numpy mask pasting against kiln's PyTorch implementations."""
import numpy as np
import pytest
import torch

from kiln.det.datasets.transforms.resize import rescale_size
from kiln.det.deploy.ort_model import _resized_size, paste_masks
from kiln.det.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask


@pytest.mark.parametrize('w, h', [(640, 480), (480, 640), (2048, 1536), (1000, 333), (33, 1999)])
def test_resize_rule_matches_test_pipeline(w, h):
    """On a square canvas as large as the scale's long side the rule is the test pipeline's ``Resize``
    (``rescale_size``); on the default landscape canvas a portrait image is shrunk until it fits."""
    square = dict(input_size=[512, 512], resize_scale=[512, 384], keep_ratio=True)
    assert _resized_size(w, h, square) == rescale_size((w, h), (512, 384))
    landscape = dict(input_size=[384, 512], resize_scale=[512, 384], keep_ratio=True)
    new_w, new_h = _resized_size(w, h, landscape)
    assert new_w <= 512 and new_h <= 384
    if w >= h:
        assert (new_w, new_h) == rescale_size((w, h), (512, 384))
    else:
        assert new_h == 384 and new_w == int(w * 384 / h + 0.5)  # the height limits it
    exact = dict(input_size=[320, 320], resize_scale=[300, 200], keep_ratio=False)
    assert _resized_size(w, h, exact) == (300, 200)


def test_paste_masks_matches_fcn_mask_head():
    """Separable numpy pasting == ``F.grid_sample`` pasting of ``FCNMaskHead`` (probabilities within 1e-5),
    including boxes that leave the image and a zero-width box."""
    rng = np.random.default_rng(0)
    masks = rng.random((4, 28, 28), dtype=np.float32)
    boxes = np.array([[10.3, 20.7, 90.2, 60.1], [-5.0, 3.0, 40.5, 120.0], [70.0, 80.0, 130.0, 99.5],
                      [30.0, 30.0, 30.0, 50.0]], dtype=np.float32)
    h, w = 100, 120
    soft = paste_masks(masks, boxes, h, w, threshold=-1)
    hard = paste_masks(masks, boxes, h, w, threshold=0.5)
    for i in range(len(masks)):
        ref, (ys, xs) = _do_paste_mask(torch.from_numpy(masks[i:i + 1, None]), torch.from_numpy(boxes[i:i + 1]),
                                       h, w, skip_empty=True)
        full = np.zeros((h, w), np.float32)
        full[ys, xs] = ref[0].numpy()
        np.testing.assert_allclose(soft[i].astype(np.float32), (full * 255).astype(np.uint8).astype(np.float32),
                                   atol=1.0)
        close = np.abs(full - 0.5) > 1e-5
        np.testing.assert_array_equal(hard[i][close], (full >= 0.5)[close])
    assert hard.dtype == bool and soft.dtype == np.uint8 and hard.any()
