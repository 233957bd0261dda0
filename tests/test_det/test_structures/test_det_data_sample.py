import pytest
import torch

from kiln.det.structures import DetDataSample
from kiln.structures import InstanceData


def _instances(n: int) -> InstanceData:
    return InstanceData(bboxes=torch.arange(4 * n, dtype=torch.float32).view(n, 4),
                        labels=torch.arange(n, dtype=torch.int64))


@pytest.mark.parametrize('field', ['gt_instances', 'pred_instances', 'ignored_instances'])
def test_typed_fields_set_get_delete(field):
    sample = DetDataSample(metainfo=dict(img_id=7, img_shape=(480, 640)))
    inst = _instances(3)
    setattr(sample, field, inst)
    assert getattr(sample, field) is inst
    assert field in sample
    assert sample.keys() == [field]  # private storage '_<field>' is hidden


def test_wrong_type_raises_and_leaves_no_field():
    sample = DetDataSample()
    with pytest.raises(TypeError, match='gt_instances must be an InstanceData'):
        sample.gt_instances = torch.zeros(2, 4)
    assert 'gt_instances' not in sample
    assert sample.keys() == []
    with pytest.raises(TypeError, match='pred_instances'):
        sample.pred_instances = dict(bboxes=torch.zeros(1, 4))


def test_deleter_removes_field():
    sample = DetDataSample(gt_instances=_instances(2), pred_instances=_instances(1))
    del sample.gt_instances
    assert 'gt_instances' not in sample
    assert sample.keys() == ['pred_instances']
    with pytest.raises(AttributeError):
        _ = sample.gt_instances


def test_to_dict_new_clone_and_cpu_keep_the_fields():
    sample = DetDataSample(metainfo=dict(img_id='a', ori_shape=(4, 5)), gt_instances=_instances(2))
    d = sample.to_dict()
    assert d['img_id'] == 'a' and d['ori_shape'] == (4, 5)
    assert torch.equal(d['gt_instances']['bboxes'], sample.gt_instances.bboxes)
    assert '_gt_instances' not in d
    clone = sample.clone()
    clone.gt_instances.bboxes += 1
    assert torch.equal(sample.gt_instances.bboxes, _instances(2).bboxes)  # deep copy
    assert sample.new().gt_instances is sample.gt_instances
    moved = sample.cpu()
    assert isinstance(moved, DetDataSample) and len(moved.gt_instances) == 2
    assert moved.img_id == 'a'
