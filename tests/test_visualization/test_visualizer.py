import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kiln.registry import VISUALIZERS
from kiln.visualization import LocalVisBackend, Visualizer

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'


def bccd_sample(name='BloodImage_00000'):
    image = np.asarray(Image.open(BCCD / 'JPEGImages' / f'{name}.jpg').convert('RGB'))
    boxes = []
    for obj in ET.parse(BCCD / 'Annotations' / f'{name}.xml').findall('object'):
        bb = obj.find('bndbox')
        boxes.append([float(bb.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')])
    return image, np.array(boxes)


def blend(under, color, alpha):
    return np.asarray(under, np.float64) * (1 - alpha) + np.asarray(color, np.float64) * alpha


def test_draw_bboxes_on_real_image():
    image, boxes = bccd_sample()
    assert image.shape == (480, 640, 3) and len(boxes) > 0
    vis = Visualizer(image=image)
    vis.draw_bboxes(torch.as_tensor(boxes), edge_colors=(255, 0, 0), line_widths=2, alpha=1.0)
    out = vis.get_image()
    assert out.shape == image.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = boxes[0].astype(int)
    xm = (x1 + x2) // 2
    np.testing.assert_array_equal(out[y1, xm], [255, 0, 0])  # top edge drawn in red
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(image, bccd_sample()[0])  # the input array is untouched
    out[y1, xm] = 0  # get_image returns a copy
    np.testing.assert_array_equal(vis.get_image()[y1, xm], [255, 0, 0])


def test_alpha_and_face_colour():
    vis = Visualizer(image=np.full((40, 40, 3), 100, np.uint8))
    vis.draw_bboxes(np.array([10, 10, 30, 30]), edge_colors='b', line_widths=1,
                    face_colors=(0, 255, 0), alpha=0.5)
    out = vis.get_image().astype(int)
    np.testing.assert_allclose(out[20, 20], blend([100, 100, 100], [0, 255, 0], 0.5), atol=1)
    np.testing.assert_array_equal(out[5, 5], [100, 100, 100])  # outside untouched
    assert out[10, 20][2] > 150  # blue edge


def test_draw_texts_with_background():
    vis = Visualizer(image=np.zeros((60, 200, 3), np.uint8))
    vis.draw_texts('RBC 0.98', np.array([10, 10]), colors='white', font_sizes=16,
                   bboxes=dict(facecolor=(255, 0, 0), alpha=1.0, pad=0.2, edgecolor='none'))
    out = vis.get_image()
    region = out[5:35, 5:120]
    colours = {tuple(c) for c in region.reshape(-1, 3)}
    assert (255, 0, 0) in colours and (255, 255, 255) in colours  # background box and text pixels
    np.testing.assert_array_equal(out[55, 190], [0, 0, 0])
    with pytest.raises(ValueError, match=r'positions must have shape \(2, 2\)'):
        vis.draw_texts(['a', 'b'], [[0, 0]] * 3)
    with pytest.raises(ValueError, match='alignment'):
        vis.draw_texts('a', [0, 0], vertical_alignments='middle')


def test_draw_binary_masks():
    vis = Visualizer(image=np.zeros((10, 10, 3), np.uint8))
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    vis.draw_binary_masks(mask, colors=(200, 100, 0), alphas=0.5)
    out = vis.get_image()
    np.testing.assert_array_equal(out[3, 3], [100, 50, 0])
    np.testing.assert_array_equal(out[8, 8], [0, 0, 0])


def test_bad_inputs_are_named():
    vis = Visualizer(image=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r'box 1 .* not xyxy'):
        vis.draw_bboxes([[0, 0, 5, 5], [6, 6, 2, 8]])
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        vis.draw_bboxes(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r'edge_colors.*3 colours for 2'):
        vis.draw_bboxes(np.zeros((2, 4)), edge_colors=['r', 'g', 'b'])
    with pytest.raises(ValueError, match=r"edge_colors\[1\]: unknown colour name 'nocolour'"):
        vis.draw_bboxes(np.zeros((2, 4)), edge_colors=['r', 'nocolour'])
    with pytest.raises(ValueError, match='uint8'):
        vis.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(RuntimeError, match='set_image'):
        Visualizer().draw_bboxes([0, 0, 1, 1])


def test_backends_under_vis_data(tmp_path):
    vis = VISUALIZERS.build(dict(type='Visualizer', save_dir=tmp_path,
                                 vis_backends=[dict(type='LocalVisBackend')]))
    assert isinstance(vis.get_backend('LocalVisBackend'), LocalVisBackend)
    vis.add_scalars({'loss': 0.5}, step=1)
    vis.add_config('cfg text')
    image, _ = bccd_sample('BloodImage_00001')
    vis.add_datasample('sample', image, step=2)
    out_file = tmp_path / 'preds' / 'sample.png'
    vis.add_datasample('sample', image, out_file=out_file)
    vis.close()
    root = tmp_path / 'vis_data'
    assert json.loads((root / 'scalars.json').read_text()) == {'loss': 0.5, 'step': 1}
    assert (root / 'config.py').read_text() == 'cfg text'
    np.testing.assert_array_equal(np.asarray(Image.open(root / 'vis_image' / 'sample_2.png')), image)
    np.testing.assert_array_equal(np.asarray(Image.open(out_file)), image)
    assert not (root / 'vis_image' / 'sample_0.png').exists()


def test_backend_configs_and_independence(tmp_path):
    with pytest.warns(UserWarning, match='save_dir'):
        vis = Visualizer(vis_backends=dict(type='LocalVisBackend'))
    assert vis.vis_backends == {}
    own_dir = Visualizer(vis_backends=dict(type='LocalVisBackend', save_dir=tmp_path / 'own'))
    own_dir.add_scalar('x', 1)
    assert (tmp_path / 'own' / 'scalars.json').exists()
    with pytest.raises(ValueError, match='named'):
        Visualizer(save_dir=tmp_path, vis_backends=[dict(type='LocalVisBackend')] * 2)
    two = Visualizer(save_dir=tmp_path / 'vis_data', vis_backends=[
        dict(type='LocalVisBackend', name='a'), dict(type='LocalVisBackend', name='b', scalar_save_file='b.json')])
    assert set(two.vis_backends) == {'a', 'b'} and two.save_dir == tmp_path / 'vis_data'
    a, b = Visualizer(name='v'), Visualizer(name='v')
    a.dataset_meta = dict(classes=('RBC',))
    assert b.dataset_meta is None


def test_import_is_light():
    code = ('import sys, kiln.visualization; '
            "print([m for m in ('matplotlib', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules])")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == '[]'
