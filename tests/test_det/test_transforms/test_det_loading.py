from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile
from kiln.registry import TRANSFORMS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
IMG = BCCD / 'JPEGImages' / 'BloodImage_00000.jpg'


def test_load_image_is_bgr_uint8_hwc():
    results = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=str(IMG)))
    rgb = np.asarray(Image.open(IMG).convert('RGB'))
    img = results['img']
    assert img.dtype == np.uint8 and img.shape == (480, 640, 3) and img.flags.c_contiguous
    np.testing.assert_array_equal(img, rgb[..., ::-1])
    assert results['img_shape'] == results['ori_shape'] == (480, 640)


def test_load_image_options():
    f = LoadImageFromFile(to_float32=True)(dict(img_path=str(IMG)))['img']
    assert f.dtype == np.float32 and f.max() <= 255
    gray = LoadImageFromFile(color_type='grayscale')(dict(img_path=str(IMG)))
    assert gray['img'].shape == (480, 640) and gray['img_shape'] == (480, 640)
    with pytest.raises(ValueError, match='imdecode_backend'):
        LoadImageFromFile(imdecode_backend='turbojpeg')


def test_load_image_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        LoadImageFromFile()(dict(img_path=str(tmp_path / 'nope.jpg')))
    assert LoadImageFromFile(ignore_empty=True)(dict(img_path=str(tmp_path / 'nope.jpg'))) is None
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg')
    with pytest.raises(OSError, match='broken.jpg'):
        LoadImageFromFile()(dict(img_path=str(broken)))


def test_load_annotations_dtypes_and_shapes():
    instances = [dict(bbox=[1, 2, 3, 4], bbox_label=2, ignore_flag=0),
                 dict(bbox=[5.5, 6, 7, 8], bbox_label=0, ignore_flag=1)]
    out = LoadAnnotations()(dict(instances=instances))
    assert out['gt_bboxes'].dtype == np.float32 and out['gt_bboxes'].shape == (2, 4)
    np.testing.assert_array_equal(out['gt_bboxes'][1], [5.5, 6, 7, 8])
    assert out['gt_bboxes_labels'].dtype == np.int64 and out['gt_bboxes_labels'].tolist() == [2, 0]
    assert out['gt_ignore_flags'].dtype == bool and out['gt_ignore_flags'].tolist() == [False, True]
    empty = LoadAnnotations()(dict(instances=[]))
    assert empty['gt_bboxes'].shape == (0, 4) and empty['gt_bboxes_labels'].shape == (0,)
    assert empty['gt_ignore_flags'].shape == (0,)
    only_boxes = LoadAnnotations(with_label=False)(dict(instances=instances))
    assert 'gt_bboxes_labels' not in only_boxes


def test_load_annotations_errors():
    with pytest.raises(KeyError, match='a.jpg'):
        LoadAnnotations()(dict(img_path='a.jpg'))
    with pytest.raises(ValueError, match='4 numbers'):
        LoadAnnotations()(dict(img_path='a.jpg', instances=[dict(bbox=[1, 2, 3], bbox_label=0)]))
    with pytest.raises(NotImplementedError, match='with_seg'):
        LoadAnnotations(with_seg=True)
    with pytest.raises(NotImplementedError, match='box_type'):
        LoadAnnotations(box_type='rbox')
