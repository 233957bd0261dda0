import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from kiln.det.datasets import COCO_CLASSES, CocoDataset
from kiln.registry import DATASETS

REPO = Path(__file__).parents[3]
BCCD = REPO / 'data' / 'bccd'
COCO128 = REPO.parent / 'shared' / 'data' / 'coco128'  # optional extra real data beside the repo
# Category ids deliberately non-contiguous and listed in another order than `classes`.
CAT_IDS = {'WBC': 3, 'RBC': 7, 'Platelets': 11}


def bccd_to_coco(path: Path, split: str = 'val', extra_anns: bool = True) -> list[str]:
    """Write BCCD `split` as a COCO json (xywh boxes, 0-based pixels); returns the image stems."""
    stems = (BCCD / 'ImageSets/Main' / f'{split}.txt').read_text().split()
    images, anns = [], []
    for i, stem in enumerate(stems):
        root = ET.parse(BCCD / 'Annotations' / f'{stem}.xml').getroot()
        images.append(dict(id=100 + i, file_name=f'{stem}.jpg', width=640, height=480))
        for o in root.findall('object'):
            x1, y1, x2, y2 = (float(o.find('bndbox').findtext(k)) - 1 for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            anns.append(dict(id=len(anns) + 1, image_id=100 + i, category_id=CAT_IDS[o.findtext('name')],
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    if extra_anns:
        anns += [dict(id=90001, image_id=100, category_id=7, bbox=[5, 5, 50, 40], area=2000, iscrowd=1),
                 dict(id=90002, image_id=100, category_id=7, bbox=[5, 5, 0.5, 40], area=20, iscrowd=0),
                 dict(id=90003, image_id=100, category_id=7, bbox=[5, 5, 50, 40], area=2000, iscrowd=0, ignore=1),
                 dict(id=90004, image_id=100, category_id=7, bbox=[700, 5, 50, 40], area=2000, iscrowd=0)]
    cats = [dict(id=v, name=k) for k, v in CAT_IDS.items()]
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return stems


def test_coco_json_of_bccd(tmp_path):
    ann = tmp_path / 'val.json'
    stems = bccd_to_coco(ann)
    ds = DATASETS.build(dict(type='CocoDataset', data_root=str(BCCD), ann_file=str(ann),
                             data_prefix=dict(img='JPEGImages/'), metainfo=dict(classes=('RBC', 'WBC', 'Platelets')),
                             test_mode=True))
    assert len(ds) == len(stems)
    info = ds.get_data_info(0)
    assert info['img_id'] == 100 and (info['height'], info['width']) == (480, 640)
    assert Path(info['img_path']).resolve() == (BCCD / 'JPEGImages' / f'{stems[0]}.jpg').resolve()
    raw = ET.parse(BCCD / 'Annotations' / f'{stems[0]}.xml').getroot().findall('object')
    # every real box + the crowd one; the < 1 px, `ignore` and outside-the-image ones are dropped
    assert len(info['instances']) == len(raw) + 1
    labels = {'RBC': 0, 'WBC': 1, 'Platelets': 2}  # mapped by name, not by json order or id
    for inst, o in zip(info['instances'], raw):
        assert inst['bbox_label'] == labels[o.findtext('name')]
        np.testing.assert_allclose(inst['bbox'], [float(o.find('bndbox').findtext(k)) - 1
                                                  for k in ('xmin', 'ymin', 'xmax', 'ymax')])  # xyxy
        assert inst['ignore_flag'] == 0
    assert info['instances'][-1] == dict(bbox=[5.0, 5.0, 55.0, 45.0], bbox_label=0, ignore_flag=1)
    assert ds.cat_ids == [7, 3, 11]


def test_class_subset_and_missing_class(tmp_path):
    ann = tmp_path / 'val.json'
    bccd_to_coco(ann, extra_anns=False)
    ds = CocoDataset(ann_file=str(ann), data_prefix=dict(img=str(BCCD / 'JPEGImages')),
                     metainfo=dict(classes=('Platelets',)), filter_cfg=dict(filter_empty_gt=True))
    assert len(ds) > 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['instances'] and all(inst['bbox_label'] == 0 for inst in info['instances'])
    n_all = len(CocoDataset(ann_file=str(ann), metainfo=dict(classes=('Platelets',)), test_mode=True))
    assert len(ds) < n_all  # images without platelets were filtered in training mode
    with pytest.raises(ValueError, match=r"val\.json: classes \['cat'\] are not categories"):
        CocoDataset(ann_file=str(ann), metainfo=dict(classes=('RBC', 'cat')))


def test_not_a_coco_file(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": []}')
    with pytest.raises(ValueError, match=r"bad\.json: not a COCO detection file"):
        CocoDataset(ann_file=str(bad))


@pytest.mark.skipif(not COCO128.is_dir(), reason='coco128 not available beside the repo')
def test_real_coco128_val():
    ds = CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_val2017.json',
                     data_prefix=dict(img='images/val2017/'), test_mode=True)
    assert ds.metainfo['classes'] == COCO_CLASSES and len(COCO_CLASSES) == 80
    assert len(ds.metainfo['palette']) == 80
    assert len(ds) == 128
    raw = json.loads((COCO128 / 'annotations/instances_val2017.json').read_text())
    cat_name = {c['id']: c['name'] for c in raw['categories']}
    first = raw['images'][0]
    info = ds.get_data_info(0)
    assert info['img_id'] == first['id'] and Path(info['img_path']).is_file()
    anns = [a for a in raw['annotations'] if a['image_id'] == first['id']]
    assert len(info['instances']) == len(anns)
    for inst, a in zip(info['instances'], anns):
        assert COCO_CLASSES[inst['bbox_label']] == cat_name[a['category_id']]
        x, y, w, h = a['bbox']
        np.testing.assert_allclose(inst['bbox'], [x, y, x + w, y + h])
    labels = [inst['bbox_label'] for i in range(len(ds)) for inst in ds.get_data_info(i)['instances']]
    assert max(labels) <= 79 and min(labels) >= 0  # COCO ids 1..90 -> contiguous 0..79


@pytest.mark.skipif(not COCO128.is_dir(), reason='coco128 not available beside the repo')
def test_segmentations_are_kept_as_instance_masks(tmp_path):
    ds = CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_seg_val2017.json',
                     data_prefix=dict(img='images/val2017/'), test_mode=True)
    raw = json.loads((COCO128 / 'annotations/instances_seg_val2017.json').read_text())
    kept = 0
    for i in range(5):
        info = ds.get_data_info(i)
        anns = [a for a in raw['annotations'] if a['image_id'] == info['img_id']]
        assert len(info['instances']) == len(anns)
        for inst, a in zip(info['instances'], anns):
            assert inst['mask'] == a['segmentation'] and isinstance(inst['mask'], list)
            kept += 1
    assert kept > 10
    # annotations without a segmentation (box-only json) get no "mask" key
    ann = tmp_path / 'val.json'
    bccd_to_coco(ann, extra_anns=False)
    box_only = CocoDataset(ann_file=str(ann), data_prefix=dict(img=str(BCCD / 'JPEGImages')),
                           metainfo=dict(classes=('RBC', 'WBC', 'Platelets')), test_mode=True)
    assert all('mask' not in inst for inst in box_only.get_data_info(0)['instances'])
