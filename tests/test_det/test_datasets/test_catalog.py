"""Detectron2-style named datasets on the real balloon set: register_coco_instances, functions, configs."""
from pathlib import Path

import numpy as np
import pytest

from kiln.det.datasets import (CatalogDataset, CocoDataset, DatasetCatalog, MetadataCatalog,
                               register_coco_instances)
from kiln.registry import DATASETS

BALLOON = Path(__file__).parents[3].parent / 'shared' / 'data' / 'balloon'


@pytest.fixture
def names():
    created = []
    yield created
    for n in created:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def test_register_coco_instances_is_lazy_and_builds_from_a_config(names):
    json_file = str(BALLOON / 'annotations' / 'instances_val.json')
    register_coco_instances('balloon_val_t', {}, json_file, str(BALLOON / 'val'))
    names.append('balloon_val_t')
    assert MetadataCatalog.get('balloon_val_t').get('thing_classes') is None  # nothing read yet
    ds = DATASETS.build(dict(type='CatalogDataset', name='balloon_val_t'))
    assert ds.metainfo['classes'] == ('balloon',)
    assert MetadataCatalog.get('balloon_val_t').thing_classes == ['balloon']
    direct = CocoDataset(ann_file=json_file, data_prefix=dict(img=str(BALLOON / 'val')),
                         metainfo=dict(classes=('balloon',)))
    assert len(ds) == len(direct) == 13
    for i in range(len(ds)):
        a, b = ds.get_data_info(i), direct.get_data_info(i)
        assert a['img_path'] == b['img_path'] and Path(a['img_path']).is_file()
        np.testing.assert_allclose([x['bbox'] for x in a['instances']], [x['bbox'] for x in b['instances']])
        assert all('mask' in x for x in a['instances'])  # polygons kept for instance segmentation


def test_registered_function_with_detectron2_dicts_is_converted(names):
    def load():
        return [dict(file_name=str(BALLOON / 'val' / 'a.jpg'), image_id=7, height=100, width=200,
                     annotations=[dict(bbox=[10, 20, 30, 40], bbox_mode=1, category_id=1, iscrowd=0),
                                  dict(bbox=[1, 2, 3, 4], bbox_mode=0, category_id=0, iscrowd=1,
                                       segmentation=[[1, 2, 3, 2, 3, 4]])])]
    DatasetCatalog.register('toy_d2', load)
    MetadataCatalog.get('toy_d2').set(thing_classes=['cat', 'dog'], thing_colors=[(255, 0, 0), (0, 255, 0)])
    names.append('toy_d2')
    ds = CatalogDataset(name='toy_d2')
    rec = ds.get_data_info(0)
    assert rec['img_id'] == 7 and (rec['height'], rec['width']) == (100, 200)
    first, second = rec['instances']
    assert first == dict(bbox=[10.0, 20.0, 40.0, 60.0], bbox_label=1, ignore_flag=0)  # xywh -> xyxy
    assert second['bbox'] == [1.0, 2.0, 3.0, 4.0] and second['ignore_flag'] == 1 and 'mask' in second
    assert ds.metainfo['classes'] == ('cat', 'dog') and ds.metainfo['palette'] == [(255, 0, 0), (0, 255, 0)]


def test_catalog_errors_are_explicit(names):
    with pytest.raises(KeyError, match="'nope' is not registered"):
        DATASETS.build(dict(type='CatalogDataset', name='nope'))
    DatasetCatalog.register('dup_t', lambda: [])
    names.append('dup_t')
    with pytest.raises(KeyError, match='already registered'):
        DatasetCatalog.register('dup_t', lambda: [])
    with pytest.raises(ValueError, match='no classes'):
        CatalogDataset(name='dup_t')
    meta = MetadataCatalog.get('dup_t').set(thing_classes=['a'])
    with pytest.raises(AttributeError, match='already'):
        meta.set(thing_classes=['b'])
    with pytest.raises(AttributeError, match="has no 'thing_colors'"):
        _ = meta.thing_colors
