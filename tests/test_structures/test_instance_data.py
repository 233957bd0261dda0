import numpy as np
import pytest
import torch

from kiln.structures import InstanceData


def make(n=4):
    return InstanceData(metainfo=dict(img_id=9),
                        bboxes=torch.arange(n * 4, dtype=torch.float32).reshape(n, 4),
                        labels=torch.arange(n),
                        names=[f'o{i}' for i in range(n)],
                        arr=np.arange(n) * 10)


def test_length_checked_with_field_names():
    inst = make(4)
    assert len(inst) == 4
    with pytest.raises(ValueError, match=r"'scores' has length 3.*length 4"):
        inst.scores = torch.zeros(3)
    with pytest.raises(ValueError, match=r"'labels' has length 2"):
        inst.labels = torch.zeros(2)
    inst.labels = torch.zeros(4)  # same length: replacing works
    with pytest.raises(TypeError, match='length'):
        inst.scalar = torch.tensor(1.0)
    assert len(InstanceData()) == 0


def test_int_and_slice_indexing():
    inst = make(4)
    one = inst[1]
    assert len(one) == 1 and one.names == ['o1'] and one.img_id == 9
    assert torch.equal(one.bboxes, torch.tensor([[4.0, 5, 6, 7]]))
    last = inst[-1]
    assert last.labels.tolist() == [3] and last.arr.tolist() == [30]
    with pytest.raises(IndexError, match='out of range'):
        inst[4]
    sl = inst[1:3]
    assert sl.labels.tolist() == [1, 2] and sl.names == ['o1', 'o2']


def test_mask_and_index_tensor():
    inst = make(4)
    mask = torch.tensor([True, False, True, False])
    m = inst[mask]
    assert m.labels.tolist() == [0, 2] and m.names == ['o0', 'o2'] and m.arr.tolist() == [0, 20]
    m2 = inst[mask.numpy()]
    assert m2.names == ['o0', 'o2']
    idx = inst[torch.tensor([3, 0, 3])]
    assert idx.labels.tolist() == [3, 0, 3] and idx.names == ['o3', 'o0', 'o3']
    assert len(inst[torch.zeros(4, dtype=torch.bool)]) == 0
    with pytest.raises(ValueError, match='length 3, expected 4'):
        inst[torch.tensor([True, False, True])]
    with pytest.raises(TypeError):
        inst[torch.tensor([0.5])]
    assert torch.equal(inst['labels'], inst.labels)


def test_cat():
    a, b = make(2), make(3)
    c = InstanceData.cat([a, b])
    assert len(c) == 5
    assert c.labels.tolist() == [0, 1, 0, 1, 2]
    assert c.names == ['o0', 'o1', 'o0', 'o1', 'o2']
    assert c.arr.tolist() == [0, 10, 0, 10, 20]
    assert c.img_id == 9
    with pytest.raises(ValueError, match='item 1 has keys'):
        InstanceData.cat([a, InstanceData(labels=torch.zeros(1))])
    with pytest.raises(ValueError, match='empty'):
        InstanceData.cat([])


def test_iteration_terminates():
    assert [len(x) for x in make(3)] == [1, 1, 1]
