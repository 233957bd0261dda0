import numpy as np
import pytest
import torch

from kiln.structures import BaseDataElement, InstanceData


class TypedSample(BaseDataElement):
    """A subclass with a typed field, written the way DetDataSample is."""

    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self) -> None:
        del self._gt_instances


def test_metainfo_and_data_fields_are_separate():
    el = BaseDataElement(metainfo=dict(img_id=3, ori_shape=(480, 640)), scores=torch.tensor([0.5, 0.2]))
    assert el.metainfo == dict(img_id=3, ori_shape=(480, 640))
    assert el.keys() == ['scores']
    assert el.metainfo_keys() == ['img_id', 'ori_shape']
    assert set(el.all_keys()) == {'img_id', 'ori_shape', 'scores'}
    assert 'img_id' in el and 'scores' in el and 'nope' not in el
    with pytest.raises(AttributeError, match='metainfo'):
        el.img_id = 4  # a metainfo name cannot become data
    with pytest.raises(AttributeError, match='data field'):
        el.set_metainfo(dict(scores=1))
    with pytest.raises(AttributeError, match='internal'):
        el._data_fields = set()


def test_metainfo_is_deep_copied():
    meta = dict(shape=[1, 2])
    el = BaseDataElement(metainfo=meta)
    meta['shape'].append(3)
    assert el.shape == [1, 2]


def test_get_pop_delattr():
    el = BaseDataElement(metainfo=dict(a=1), x=torch.ones(2))
    assert el.get('a') == 1 and el.get('zzz', 5) == 5
    x = el.pop('x')
    assert torch.equal(x, torch.ones(2)) and 'x' not in el and el.keys() == []
    assert el.pop('missing', None) is None
    with pytest.raises(KeyError, match='missing'):
        el.pop('missing')
    del el.a
    assert el.metainfo == {}


def test_tensor_helpers_convert_nested_values():
    inner = InstanceData(bboxes=torch.rand(3, 4, requires_grad=True) * 1)
    el = BaseDataElement(metainfo=dict(img_id=1), inner=inner, t=torch.arange(3.0), arr=np.arange(2))
    n = el.numpy()
    assert isinstance(n.t, np.ndarray) and isinstance(n.inner.bboxes, np.ndarray)
    assert n.img_id == 1 and n.arr is el.arr
    back = n.to_tensor()
    assert isinstance(back.t, torch.Tensor) and isinstance(back.arr, torch.Tensor)
    d = el.detach()
    assert not d.inner.bboxes.requires_grad and el.inner.bboxes.requires_grad
    h = el.to(torch.float64)
    assert h.t.dtype == torch.float64 and h.inner.bboxes.dtype == torch.float64
    assert el.cpu().t.device.type == 'cpu'


def test_clone_is_independent_and_new_shares():
    el = BaseDataElement(metainfo=dict(img_id=1), t=torch.zeros(2))
    c = el.clone()
    c.t[0] = 5
    assert el.t[0] == 0
    n = el.new(metainfo=dict(img_id=2), t=torch.ones(1))
    assert n.img_id == 2 and torch.equal(n.t, torch.ones(1))
    shared = el.new()
    assert shared.t is el.t and shared.img_id == 1


def test_to_dict_flattens_metainfo_and_nested():
    inst = InstanceData(metainfo=dict(k='v'), labels=torch.tensor([1, 2]))
    el = BaseDataElement(metainfo=dict(img_id=7), pred_instances=inst)
    d = el.to_dict()
    assert set(d) == {'img_id', 'pred_instances'}
    assert d['img_id'] == 7
    assert isinstance(d['pred_instances'], dict)
    assert torch.equal(d['pred_instances']['labels'], torch.tensor([1, 2]))
    assert d['pred_instances']['k'] == 'v'


def test_typed_property_field():
    s = TypedSample(metainfo=dict(img_id=0))
    s.gt_instances = InstanceData(labels=torch.tensor([0]))
    assert s.keys() == ['gt_instances']
    assert torch.equal(s.to_dict()['gt_instances']['labels'], torch.tensor([0]))
    with pytest.raises(TypeError, match='gt_instances'):
        s.gt_instances = torch.zeros(1)
    moved = s.to('cpu')
    assert isinstance(moved, TypedSample) and isinstance(moved.gt_instances, InstanceData)
    del s.gt_instances
    assert s.keys() == [] and 'gt_instances' not in s


def test_repr_mentions_fields():
    r = repr(BaseDataElement(metainfo=dict(img_id=1), scores=torch.zeros(100)))
    assert 'img_id: 1' in r and 'scores' in r and 'shape=(100,)' in r


def test_pickle_and_deepcopy_roundtrip():
    import copy
    import pickle
    s = TypedSample(metainfo=dict(img_id=4))
    s.gt_instances = InstanceData(labels=torch.tensor([2, 1]))
    for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert isinstance(other, TypedSample) and other.img_id == 4 and other.keys() == ['gt_instances']
        assert torch.equal(other.gt_instances.labels, torch.tensor([2, 1]))
        with pytest.raises(ValueError, match='length'):
            other.gt_instances.scores = torch.zeros(3)
