import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kiln.dataset import BaseDataset, BaseTransform, Compose

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'


class BCCDList(BaseDataset):
    """A tiny VOC reader over the vendored BCCD split (test stand-in for the det VOCDataset)."""

    METAINFO = dict(classes=('RBC', 'WBC', 'Platelets'))

    def load_data_list(self):
        ids = Path(self.ann_file).read_text().split()
        out = []
        for img_id in ids:
            root = ET.parse(Path(self.data_prefix['ann']) / f'{img_id}.xml').getroot()
            out.append(dict(img_id=img_id,
                            img_path=str(Path(self.data_prefix['img_path']) / f'{img_id}.jpg'),
                            labels=[o.findtext('name') for o in root.iter('object')]))
        return out

    def filter_data(self):
        cls = (self.filter_cfg or {}).get('require_class')
        if cls is None:
            return self.data_list
        return [d for d in self.data_list if cls in d['labels']]


def make(**kw):
    return BCCDList(ann_file='ImageSets/Main/val.txt', data_root=str(BCCD),
                    data_prefix=dict(img_path='JPEGImages', ann='Annotations'), **kw)


def test_paths_are_joined_and_records_loaded():
    ds = make()
    assert ds.ann_file == str(BCCD / 'ImageSets/Main/val.txt')
    ids = (BCCD / 'ImageSets/Main/val.txt').read_text().split()
    assert len(ds) == len(ids) == 87
    info = ds.get_data_info(3)
    assert info['img_id'] == ids[3] and info['sample_idx'] == 3
    assert Path(info['img_path']).is_file()
    assert ds.get_data_info(-1)['sample_idx'] == 86
    with pytest.raises(IndexError, match='index 87 out of range for 87'):
        ds.get_data_info(87)


def test_get_data_info_is_a_copy():
    ds = make()
    ds.get_data_info(0)['labels'].append('X')
    assert 'X' not in ds.get_data_info(0)['labels']


def test_indices_select_from_unfiltered_list_before_filtering():
    ids = (BCCD / 'ImageSets/Main/val.txt').read_text().split()
    full = make()
    has_platelets = [i for i in range(len(full)) if 'Platelets' in full.get_data_info(i)['labels']]
    no_platelets = [i for i in range(len(full)) if i not in has_platelets]
    assert has_platelets and no_platelets
    chosen = sorted(has_platelets[:3] + no_platelets[:3])
    ds = make(indices=chosen, filter_cfg=dict(require_class='Platelets'))
    # the indices refer to the raw list; filtering then drops the images without platelets
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [ids[i] for i in chosen if i in has_platelets]
    first = make(indices=10)
    assert [first.get_data_info(i)['img_id'] for i in range(len(first))] == ids[:10]
    last = make(indices=-2)
    assert [last.get_data_info(i)['img_id'] for i in range(2)] == ids[-2:]
    with pytest.raises(IndexError, match=r'indices\[1\] = 500'):
        make(indices=[0, 500])


def test_metainfo_priority_and_copy():
    ds = make(metainfo=dict(palette=[(1, 2, 3)]))
    assert ds.metainfo == dict(classes=('RBC', 'WBC', 'Platelets'), palette=[(1, 2, 3)])
    ds.metainfo['classes'] = ()
    assert ds.metainfo['classes'] == ('RBC', 'WBC', 'Platelets')
    assert make(metainfo=dict(classes=('a',))).metainfo['classes'] == ('a',)


def test_lazy_init_and_idempotent_full_init():
    calls = []

    class Counting(BCCDList):
        def load_data_list(self):
            calls.append(1)
            return super().load_data_list()

    ds = Counting(ann_file='ImageSets/Main/val.txt', data_root=str(BCCD),
                  data_prefix=dict(img_path='JPEGImages', ann='Annotations'), lazy_init=True)
    assert calls == [] and ds.metainfo['classes'][0] == 'RBC'
    ds.full_init()
    ds.full_init()
    assert len(ds) == 87 and calls == [1]


def test_serialize_data_gives_same_records():
    plain, ser = make(), make(serialize_data=True)
    assert ser.data_list == [] and ser.data_bytes is not None
    assert len(ser) == len(plain)
    for i in (0, 40, 86):
        assert ser.get_data_info(i) == plain.get_data_info(i)
    sub = ser.get_subset([5, 1])
    assert [sub.get_data_info(i)['img_id'] for i in range(2)] == [plain.get_data_info(5)['img_id'],
                                                                  plain.get_data_info(1)['img_id']]
    assert len(ser) == 87


def test_get_subset_inplace():
    ds = make()
    keep = ds.get_data_info(7)['img_id']
    ds.get_subset_([7])
    assert len(ds) == 1 and ds.get_data_info(0)['img_id'] == keep


class DropOdd(BaseTransform):
    def transform(self, results):
        return None if results['sample_idx'] % 2 else results


def test_refetch_in_train_mode_and_errors():
    ds = make(pipeline=[DropOdd()])
    out = ds[1]  # index 1 is dropped; another (even) index is returned
    assert out['sample_idx'] % 2 == 0
    test_ds = make(pipeline=[DropOdd()], test_mode=True)
    with pytest.raises(RuntimeError, match='index 1 in test mode'):
        test_ds[1]
    never = make(pipeline=[lambda r: None], max_refetch=3)
    with pytest.raises(RuntimeError, match='index 0 and 3 randomly chosen'):
        never[0]


def test_default_json_loader(tmp_path):
    ann = dict(metainfo=dict(classes=['from_file'], version='1'),
               data_list=[dict(img_path='BloodImage_00001.jpg', label=0),
                          dict(img_path='BloodImage_00003.jpg', label=1)])
    (tmp_path / 'ann.json').write_text(json.dumps(ann))

    class Toy(BaseDataset):
        METAINFO = dict(classes=('from_class',))

    ds = Toy(ann_file=str(tmp_path / 'ann.json'), data_root=str(BCCD), data_prefix=dict(img_path='JPEGImages'),
             pipeline=[lambda r: {**r, 'seen': True}])
    assert ds.metainfo == dict(classes=('from_class',), version='1')  # class beats file, file fills gaps
    info = ds[1]
    assert info['img_path'] == str(BCCD / 'JPEGImages' / 'BloodImage_00003.jpg') and info['seen']
    (tmp_path / 'bad.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='bad.json'):
        Toy(ann_file=str(tmp_path / 'bad.json'))


def test_compose_builds_from_registry_and_stops_on_none():
    from kiln.registry import TRANSFORMS

    @TRANSFORMS.register_module(name='_KilnTestAddOne', force=True)
    class AddOne(BaseTransform):
        def __init__(self, key='x'):
            self.key = key

        def transform(self, results):
            results[self.key] += 1
            return results

    pipe = Compose([dict(type='_KilnTestAddOne'), lambda r: r, dict(type='_KilnTestAddOne', key='x')])
    assert pipe(dict(x=0)) == dict(x=2)
    assert Compose([lambda r: None, dict(type='_KilnTestAddOne')])(dict(x=0)) is None
    assert Compose(None)(dict(x=1)) == dict(x=1)
    with pytest.raises(TypeError, match=r'pipeline\[1\]'):
        Compose([lambda r: r, 3])
