"""YOLODataset on the real coco128 export (Ultralytics layout) against its COCO json twin, and bad labels."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from kiln.det.datasets import CocoDataset, YOLODataset
from kiln.det.datasets.yolo import label_path_for, read_data_yaml
from kiln.registry import DATASETS

REPO = Path(__file__).parents[3]
COCO128 = REPO.parent / 'shared' / 'data' / 'coco128'


@pytest.fixture(scope='module')
def yolo_train():
    return YOLODataset(data_root=str(COCO128), ann_file='data.yaml', split='train')


def test_reads_names_and_every_image_of_the_split(yolo_train):
    assert len(yolo_train) == 128
    classes = yolo_train.metainfo['classes']
    assert len(classes) == 80 and classes[:3] == ('person', 'bicycle', 'car')
    first = yolo_train.get_data_info(0)
    assert first['img_path'].endswith('images/train2017/000000000009.jpg')
    assert (first['width'], first['height'], first['img_id']) == (640, 480, 9)
    # two coco128 train images have no label file: background images with no instances
    assert sum(not yolo_train.get_data_info(i)['instances'] for i in range(len(yolo_train))) == 2


def test_boxes_equal_the_coco_json_of_the_same_images(yolo_train):
    coco = CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_train2017.json',
                       data_prefix=dict(img='images/train2017/'))
    by_id = {coco.get_data_info(i)['img_id']: coco.get_data_info(i) for i in range(len(coco))}
    total = 0
    for i in range(len(yolo_train)):
        rec = yolo_train.get_data_info(i)
        twin = by_id[rec['img_id']]['instances']
        assert len(rec['instances']) == len(twin), rec['img_path']
        for inst in rec['instances']:  # YOLO normalises to 6 decimals: well under a pixel
            dist = min(np.abs(np.subtract(inst['bbox'], o['bbox'])).max() for o in twin
                       if o['bbox_label'] == inst['bbox_label'])
            assert dist < 0.01
            total += 1
    assert total == 929


def test_metainfo_classes_select_and_reorder(yolo_train):
    ds = DATASETS.build(dict(type='YOLODataset', data_root=str(COCO128), ann_file='data.yaml', split='val',
                             metainfo=dict(classes=('dog', 'person'))))
    labels = {inst['bbox_label'] for i in range(len(ds)) for inst in ds.get_data_info(i)['instances']}
    assert labels == {0, 1}
    n_person = sum(inst['bbox_label'] == 1 for i in range(len(ds)) for inst in ds.get_data_info(i)['instances'])
    full = YOLODataset(data_root=str(COCO128), ann_file='data.yaml', split='val')
    assert n_person == sum(inst['bbox_label'] == 0 for i in range(len(full))
                           for inst in full.get_data_info(i)['instances'])
    with pytest.raises(ValueError, match="classes \\['unicorn'\\]"):
        YOLODataset(data_root=str(COCO128), ann_file='data.yaml', metainfo=dict(classes=('unicorn',)))


def _tiny_copy(tmp_path, label_text, names='[cell, dog]'):
    root = tmp_path / 'ds'
    (root / 'images' / 'train').mkdir(parents=True)
    (root / 'labels' / 'train').mkdir(parents=True)
    src = COCO128 / 'images' / 'train2017' / '000000000009.jpg'
    shutil.copy(src, root / 'images' / 'train' / 'a.jpg')
    (root / 'labels' / 'train' / 'a.txt').write_text(label_text)
    (root / 'data.yaml').write_text(f'path: .\ntrain: images/train\nval: images/train\nnames: {names}\n')
    return root


def test_segment_lines_give_polygons_and_boxes(tmp_path):
    root = _tiny_copy(tmp_path, '1 0.1 0.1 0.5 0.1 0.5 0.5\n0 0.5 0.5 0.2 0.4\n')
    rec = YOLODataset(data_root=str(root), ann_file='data.yaml').get_data_info(0)
    seg, box = rec['instances']
    np.testing.assert_allclose(seg['bbox'], [64, 48, 320, 240])
    np.testing.assert_allclose(seg['mask'][0], [64, 48, 320, 48, 320, 240])
    np.testing.assert_allclose(box['bbox'], [256, 144, 384, 336])
    assert (seg['bbox_label'], box['bbox_label']) == (1, 0)


@pytest.mark.parametrize('text, match', [
    ('2 0.5 0.5 0.1 0.1\n', r"a\.txt:1: class id 2 is out of range.*2 classes"),
    ('0 0.5 0.5 0.1\n', r"a\.txt:1: 3 coordinates"),
    ('0 0.5 0.5 0.1 0.1\n0 half 0.5 0.1 0.1\n', r"a\.txt:2: expected numbers"),
])
def test_bad_label_lines_name_file_and_line(tmp_path, text, match):
    root = _tiny_copy(tmp_path, text)
    with pytest.raises(ValueError, match=match):
        YOLODataset(data_root=str(root), ann_file='data.yaml')


def test_yaml_errors_and_helpers(tmp_path):
    bad = tmp_path / 'data.yaml'
    bad.write_text('path: .\ntrain: images\n')
    with pytest.raises(ValueError, match="missing 'names'"):
        read_data_yaml(str(bad))
    bad.write_text('names: {0: a, 2: b}\n')
    with pytest.raises(ValueError, match='without gaps'):
        read_data_yaml(str(bad))
    bad.write_text('!!python/object/apply:os.system ["echo no"]\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        read_data_yaml(str(bad))
    assert label_path_for('/d/images/train/images/x.png') == '/d/images/train/labels/x.txt'
    root = _tiny_copy(tmp_path, '')
    with pytest.raises(ValueError, match="no 'test' split"):
        YOLODataset(data_root=str(root), ann_file='data.yaml', split='test')
