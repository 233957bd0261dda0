from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kiln.det.structures import DetDataSample
from kiln.det.visualization import DetLocalVisualizer, get_palette, make_palette
from kiln.registry import VISUALIZERS
from kiln.structures import InstanceData

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def _image() -> np.ndarray:
    return np.asarray(Image.open(BCCD / 'JPEGImages' / 'BloodImage_00000.jpg').convert('RGB'))


def _sample() -> DetDataSample:
    s = DetDataSample(metainfo=dict(img_id='BloodImage_00000'))
    s.gt_instances = InstanceData(bboxes=torch.tensor([[259., 176., 490., 375.]]), labels=torch.tensor([1]))
    s.pred_instances = InstanceData(bboxes=torch.tensor([[100., 100., 200., 200.], [300., 50., 400., 120.]]),
                                    scores=torch.tensor([0.9, 0.1]), labels=torch.tensor([0, 2]))
    return s


def _visualizer(**kwargs) -> DetLocalVisualizer:
    vis = VISUALIZERS.build(dict(type='DetLocalVisualizer', line_width=3, alpha=1.0, **kwargs))
    vis.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    return vis


def _edge_color(img: np.ndarray, x: int, y0: int, y1: int) -> np.ndarray:
    """Median colour of a vertical segment (a box's left edge)."""
    return np.median(img[y0:y1, x], axis=0)


def test_gt_left_pred_right_written_to_png(tmp_path):
    image = _image()
    out = tmp_path / 'sub' / 'vis.png'
    _visualizer().add_datasample('img', image, _sample(), out_file=str(out), pred_score_thr=0.3)
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (480, 1280, 3)
    left, right = drawn[:, :640], drawn[:, 640:]
    np.testing.assert_array_equal(_edge_color(left, 260, 250, 350), PALETTE[1])  # WBC gt box, green
    np.testing.assert_array_equal(_edge_color(right, 101, 130, 190), PALETTE[0])  # RBC prediction, red
    # the 0.1-score Platelets prediction is below the threshold: its left edge is untouched
    np.testing.assert_array_equal(right[80:110, 301], image[80:110, 301])
    # predictions are not drawn on the gt panel
    np.testing.assert_array_equal(left[130:190, 101], image[130:190, 101])
    # the label text (with a dark background) is drawn inside the top-left corner of the box
    assert right[104:112, 104:130].mean() < image[104:112, 104:130].mean() - 30


def test_panels_and_backends():
    image = _image()
    sent = []

    class Recorder(DetLocalVisualizer):
        def add_image(self, name, image, step=0):
            sent.append((name, image.shape, step))

    vis = Recorder(line_width=2)
    vis.dataset_meta = dict(classes=CLASSES)  # no palette: random colours
    vis.add_datasample('val_img', image, _sample(), draw_gt=False, step=7)
    assert sent == [('val_img', (480, 640, 3), 7)]
    vis.add_datasample('plain', image, None)
    assert sent[-1][1] == (480, 640, 3)
    np.testing.assert_array_equal(vis.get_image(), image)
    vis.add_datasample('thr', image, _sample(), draw_gt=False, pred_score_thr=0.95)  # nothing above 0.95
    np.testing.assert_array_equal(vis.get_image(), image)


def test_fixed_bbox_color_overrides_palette(tmp_path):
    out = tmp_path / 'vis.png'
    _visualizer(bbox_color=(255, 255, 0)).add_datasample('img', _image(), _sample(), draw_pred=False,
                                                         out_file=str(out))
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (480, 640, 3)
    np.testing.assert_array_equal(_edge_color(drawn, 260, 250, 350), (255, 255, 0))


def test_palettes():
    assert make_palette(3) == make_palette(3) and len(set(make_palette(80))) == 80
    assert get_palette('red', 2) == [(255, 0, 0)] * 2
    assert get_palette((1, 2, 3), 2) == [(1, 2, 3)] * 2
    assert get_palette(PALETTE, 4) == PALETTE + [PALETTE[0]]
    assert get_palette('random', 5) == get_palette(None, 5)
    with pytest.raises(ValueError, match='colour'):
        get_palette('not-a-colour', 2)
