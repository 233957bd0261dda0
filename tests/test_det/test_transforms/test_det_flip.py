from pathlib import Path

import numpy as np
import pytest
import torch

from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, RandomFlip, bbox_flip
from kiln.registry import TRANSFORMS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
BOXES = [[10, 20, 110, 220], [600, 400, 640, 480]]


def _bccd_results() -> dict:
    results = LoadImageFromFile()(dict(img_path=str(BCCD / 'JPEGImages' / 'BloodImage_00002.jpg'),
                                       instances=[dict(bbox=b, bbox_label=0, ignore_flag=0) for b in BOXES]))
    return LoadAnnotations()(results)


@pytest.mark.parametrize('direction, axes, expected', [
    ('horizontal', (1,), [[530, 20, 630, 220], [0, 400, 40, 480]]),
    ('vertical', (0,), [[10, 260, 110, 460], [600, 0, 640, 80]]),
    ('diagonal', (0, 1), [[530, 260, 630, 460], [0, 0, 40, 80]]),
])
def test_flip_image_and_boxes(direction, axes, expected):
    original = _bccd_results()
    img = original['img'].copy()
    out = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0, direction=direction))(original)
    assert out['flip'] is True and out['flip_direction'] == direction
    np.testing.assert_array_equal(out['img'], np.flip(img, axis=axes))
    np.testing.assert_allclose(out['gt_bboxes'], expected)
    back = RandomFlip(prob=1.0, direction=direction)(out)  # flipping twice restores everything
    np.testing.assert_array_equal(back['img'], img)
    np.testing.assert_allclose(back['gt_bboxes'], BOXES)


def test_no_flip_and_probabilities():
    out = RandomFlip(prob=0.0)(_bccd_results())
    assert out['flip'] is False and out['flip_direction'] is None
    np.testing.assert_allclose(out['gt_bboxes'], BOXES)
    np.random.seed(0)
    flip = RandomFlip(prob=[0.3, 0.5], direction=['horizontal', 'vertical'])
    dirs = [flip._choose_direction() for _ in range(4000)]
    assert dirs.count('horizontal') / 4000 == pytest.approx(0.3, abs=0.03)
    assert dirs.count('vertical') / 4000 == pytest.approx(0.5, abs=0.03)
    assert dirs.count(None) / 4000 == pytest.approx(0.2, abs=0.03)
    with pytest.raises(ValueError, match='direction'):
        RandomFlip(direction='sideways')
    with pytest.raises(ValueError, match='sum'):
        RandomFlip(prob=[0.6, 0.6], direction=['horizontal', 'vertical'])


def test_bbox_flip_on_tensors():
    boxes = torch.tensor([[10., 20., 110., 220.]])
    out = bbox_flip(boxes, (480, 640), 'horizontal')
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [[530., 20., 630., 220.]]
    assert boxes.tolist() == [[10., 20., 110., 220.]]  # input untouched
