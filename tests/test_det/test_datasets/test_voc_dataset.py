import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from kiln.det.datasets import VOCDataset, XMLDataset
from kiln.registry import DATASETS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')


def _raw_objects(img_id: str) -> list[tuple[str, list[float]]]:
    root = ET.parse(BCCD / 'Annotations' / f'{img_id}.xml').getroot()
    return [(o.findtext('name'), [float(o.find('bndbox').findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax')])
            for o in root.findall('object')]


def _bccd(**kwargs) -> VOCDataset:
    cfg = dict(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
               metainfo=dict(classes=CLASSES), test_mode=True)
    cfg.update(kwargs)
    return VOCDataset(**cfg)


def test_bccd_test_split_records_match_the_xml():
    ds = _bccd()
    ids = (BCCD / 'ImageSets/Main/test.txt').read_text().split()
    assert len(ds) == len(ids) == 72
    assert ds.metainfo['classes'] == CLASSES
    assert ds.metainfo['dataset_type'] is None
    info = ds.get_data_info(0)
    assert info['img_id'] == ids[0] == 'BloodImage_00007'
    assert Path(info['img_path']).resolve() == (BCCD / 'JPEGImages' / f'{ids[0]}.jpg').resolve()
    assert Path(info['img_path']).is_file()
    assert (info['height'], info['width']) == (480, 640)
    raw = _raw_objects(ids[0])
    assert len(info['instances']) == len(raw)
    for inst, (name, box) in zip(info['instances'], raw):
        assert inst['bbox_label'] == CLASSES.index(name)
        expected = np.clip(np.array(box) - 1, 0, [640, 480, 640, 480])  # VOC is 1-based
        np.testing.assert_allclose(inst['bbox'], expected)
        assert inst['ignore_flag'] == 0
    assert ds.get_cat_ids(0) == [CLASSES.index(n) for n, _ in raw]


def test_built_from_registry_with_mmdet_config_keys():
    with pytest.warns(UserWarning, match='BloodImage_00338.xml'):  # its degenerate box is in val
        ds = DATASETS.build(dict(type='VOCDataset', data_root=str(BCCD), ann_file='ImageSets/Main/val.txt',
                                 data_prefix=dict(sub_data_root=''), metainfo=dict(classes=CLASSES),
                                 filter_cfg=dict(filter_empty_gt=True, min_size=32)))
    assert isinstance(ds, VOCDataset) and len(ds) == 87


def test_degenerate_boxes_are_dropped_with_a_warning(tmp_path):
    ids = tmp_path / 'ids.txt'
    ids.write_text('BloodImage_00338\nBloodImage_00343\n')
    with pytest.warns(UserWarning, match=r'dropped 2 box.*BloodImage_00338\.xml object #\d+'):
        ds = _bccd(ann_file=str(ids))
    for i, img_id in enumerate(['BloodImage_00338', 'BloodImage_00343']):
        boxes = np.array([inst['bbox'] for inst in ds.get_data_info(i)['instances']])
        assert len(boxes) == len(_raw_objects(img_id)) - 1
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()


def test_class_subset_and_unknown_classes_are_skipped():
    ds = _bccd(metainfo=dict(classes=('WBC',)))
    info = ds.get_data_info(0)
    n_wbc = sum(name == 'WBC' for name, _ in _raw_objects(info['img_id']))
    assert len(info['instances']) == n_wbc >= 1
    assert {inst['bbox_label'] for inst in info['instances']} == {0}
    voc = VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', test_mode=True,
                     data_prefix=dict(sub_data_root=''))  # default VOC classes: no BCCD class matches
    assert len(voc.metainfo['classes']) == 20
    assert all(len(voc.get_data_info(i)['instances']) == 0 for i in range(len(voc)))


def test_filter_cfg_semantics():
    # Training: images smaller than min_size are dropped. (Default VOC classes on BCCD leave no object at all:
    # an error since issue 11, with or without filter_empty_gt; see test_bad_data.py.)
    for filter_cfg in (dict(filter_empty_gt=True, min_size=32), dict(filter_empty_gt=False)):
        with pytest.raises(ValueError, match='no object is left to train on'):
            VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                       filter_cfg=filter_cfg)
    assert len(_bccd(test_mode=False, filter_cfg=dict(min_size=481))) == 0  # 640x480 images
    assert len(_bccd(test_mode=False, filter_cfg=dict(min_size=480))) == 72
    # Test mode never filters (evaluation must see every image).
    assert len(_bccd(test_mode=True, filter_cfg=dict(filter_empty_gt=True, min_size=10_000))) == 72


def _tiny_voc(tmp_path: Path, xml_text: str, with_image: bool = True) -> Path:
    root = tmp_path / 'voc'
    (root / 'Annotations').mkdir(parents=True)
    (root / 'JPEGImages').mkdir()
    (root / 'ImageSets' / 'Main').mkdir(parents=True)
    (root / 'ImageSets/Main/test.txt').write_text('img0\n')
    (root / 'Annotations/img0.xml').write_text(xml_text)
    if with_image:
        shutil.copy(BCCD / 'JPEGImages/BloodImage_00000.jpg', root / 'JPEGImages/img0.jpg')
    return root


def _obj(name='RBC', box=(10, 20, 30, 40), difficult='0'):
    b = ''.join(f'<{k}>{v}</{k}>' for k, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box))
    return f'<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{b}</bndbox></object>'


def _load(root: Path) -> XMLDataset:
    return XMLDataset(data_root=str(root), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                      metainfo=dict(classes=CLASSES), test_mode=True)


def test_missing_size_reads_the_image_and_difficult_sets_ignore_flag(tmp_path):
    root = _tiny_voc(tmp_path, f'<annotation>{_obj()}{_obj("WBC", (1, 1, 700, 500), "1")}</annotation>')
    with pytest.warns(UserWarning, match=r'clipped 1 box.*img0\.xml object #1 \(WBC\) \[0, 0, 699, 499\] in a 640x480 image'):
        info = _load(root).get_data_info(0)
    assert (info['width'], info['height']) == (640, 480)  # from the JPEG header
    assert info['instances'][0] == dict(bbox=[9.0, 19.0, 29.0, 39.0], bbox_label=0, ignore_flag=0)
    assert info['instances'][1] == dict(bbox=[0.0, 0.0, 640.0, 480.0], bbox_label=1, ignore_flag=1)  # clipped


@pytest.mark.parametrize('xml_text, match', [
    ('<annotation><object><name>RBC</name>', r'img0\.xml: malformed xml'),
    (f'<annotation>{_obj(box=(30, 20, 10, 40))}</annotation>', r'img0\.xml: object #0 \(RBC\) has xmax < xmin'),
    (f'<annotation>{_obj(box=("a", 20, 10, 40))}</annotation>', r'img0\.xml: object #0 \(RBC\) needs numeric'),
    ('<annotation><object><name>RBC</name></object></annotation>', r'img0\.xml: object #0 \(RBC\) has no <bndbox>'),
])
def test_malformed_annotations_raise_naming_the_file(tmp_path, xml_text, match):
    root = _tiny_voc(tmp_path, xml_text)
    with pytest.raises(ValueError, match=match):
        _load(root)


def test_missing_xml_names_the_path(tmp_path):
    root = _tiny_voc(tmp_path, '<annotation/>')
    (root / 'Annotations/img0.xml').unlink()
    with pytest.raises(FileNotFoundError, match='img0.xml'):
        _load(root)


def test_pipeline_end_to_end_on_bccd():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale=(320, 320), keep_ratio=True), dict(type='PackDetInputs')]
    ds = _bccd(pipeline=pipeline)
    out = ds[3]
    info = ds.get_data_info(3)
    assert out['inputs'].shape == (3, 240, 320)
    sample = out['data_samples']
    assert sample.img_id == info['img_id'] and sample.ori_shape == (480, 640)
    assert len(sample.gt_instances) == len(info['instances'])
    np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(),
                               np.array([i['bbox'] for i in info['instances']]) * 0.5, atol=1e-4)
    assert sample.instances == info['instances']
