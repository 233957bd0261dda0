"""FilterAnnotations on real data: exactly the tiny boxes (coco128 has some) or empty masks are dropped."""
import numpy as np
import pytest
from test_det.test_transforms.aug_data import balloon_sample, coco128_sample

from kiln.registry import TRANSFORMS


@pytest.mark.parametrize('index', [60, 97, 100])
def test_filter_drops_exactly_the_tiny_boxes(index):
    src = coco128_sample(index)
    boxes = src['gt_bboxes']
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    tiny = (w <= 4) | (h <= 4)
    assert 1 <= tiny.sum() < len(boxes)  # the known quirk of coco128
    out = TRANSFORMS.build(dict(type='FilterAnnotations', min_gt_bbox_wh=(4, 4)))(dict(src))
    np.testing.assert_array_equal(out['gt_bboxes'], boxes[~tiny])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], src['gt_bboxes_labels'][~tiny])
    assert len(out['gt_ignore_flags']) == (~tiny).sum()


def test_filter_by_mask_and_keep_empty():
    src = balloon_sample(3)
    masks = src['gt_masks']
    masks.masks[[1, 4]] = 0  # two instances lose their masks
    out = TRANSFORMS.build(dict(type='FilterAnnotations', by_box=False, by_mask=True))(dict(src))
    keep = np.ones(len(src['gt_bboxes']), bool)
    keep[[1, 4]] = False
    np.testing.assert_array_equal(out['gt_bboxes'], src['gt_bboxes'][keep])
    assert len(out['gt_masks']) == keep.sum() and (out['gt_masks'].areas > 0).all()
    huge = dict(type='FilterAnnotations', min_gt_bbox_wh=(10000, 10000))
    assert TRANSFORMS.build(huge)(dict(src)) is None  # keep_empty=True (MMDetection's default) drops the image
    empty = TRANSFORMS.build(dict(huge, keep_empty=False))(dict(src))
    assert len(empty['gt_bboxes']) == len(empty['gt_masks']) == len(empty['gt_bboxes_labels']) == 0
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='FilterAnnotations', by_box=False, by_mask=False))
