import pytest

from kiln.dataset import BaseDataset, ConcatDataset, RepeatDataset


class ListDataset(BaseDataset):
    def __init__(self, items, **kw):
        self.items = items
        super().__init__(**kw)

    def load_data_list(self):
        return [dict(v=v) for v in self.items]


def test_concat_dataset_indexes_across_parts():
    a = ListDataset([1, 2], metainfo=dict(classes=('x',)))
    b = ListDataset([3, 4, 5], metainfo=dict(classes=('x',)))
    cat = ConcatDataset([a, b])
    assert len(cat) == 5
    assert [cat[i]['v'] for i in range(5)] == [1, 2, 3, 4, 5]
    assert cat[-1]['v'] == 5 and cat.get_data_info(2)['sample_idx'] == 0
    assert cat.metainfo == dict(classes=('x',))
    with pytest.raises(IndexError):
        cat[5]
    with pytest.raises(ValueError, match=r"datasets\[1\].metainfo\['classes'\]"):
        ConcatDataset([a, ListDataset([1], metainfo=dict(classes=('y',)))])
    assert len(ConcatDataset([a, ListDataset([1], metainfo=dict(classes=('y',)))], ignore_keys='classes')) == 3


def test_repeat_dataset():
    rep = RepeatDataset(ListDataset([1, 2, 3]), times=2)
    assert len(rep) == 6
    assert [rep[i]['v'] for i in range(6)] == [1, 2, 3, 1, 2, 3]
    with pytest.raises(ValueError, match='times'):
        RepeatDataset(ListDataset([1]), times=0)
