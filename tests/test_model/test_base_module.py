import math

import pytest
import torch
from torch import nn

from kiln.model import BaseModule, bias_init_with_prob, initialize
from kiln.registry import WEIGHT_INITIALIZERS


class Head(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(2, 2, 1)
        self.cls = nn.Conv2d(2, 3, 1)
        self.bn = nn.BatchNorm2d(2)


class Net(BaseModule):
    def __init__(self, init_cfg=None, head_cfg=None):
        super().__init__(init_cfg)
        self.stem = nn.Conv2d(3, 2, 3)
        self.fc = nn.Linear(4, 2)
        self.head = Head(head_cfg)


def test_layer_and_override():
    net = Net(init_cfg=[dict(type='Constant', layer='Conv2d', val=1, bias=2),
                        dict(type='Constant', layer='Linear', val=3, override=dict(type='Constant', name='fc',
                                                                                   val=5, bias=6))])
    net.init_weights()
    assert torch.all(net.stem.weight == 1) and torch.all(net.stem.bias == 2)
    assert torch.all(net.head.conv.weight == 1)     # head has no init_cfg of its own
    assert torch.all(net.fc.weight == 5) and torch.all(net.fc.bias == 6)
    assert net.is_init and net.head.is_init


def test_child_init_cfg_wins_and_bias_prob():
    net = Net(init_cfg=dict(type='Constant', layer='Conv2d', val=1),
              head_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                            override=dict(type='Normal', name='cls', std=0.01, bias_prob=0.01)))
    net.init_weights()
    assert torch.all(net.stem.weight == 1)
    assert not torch.all(net.head.conv.weight == 1) and net.head.conv.weight.abs().max() < 0.1
    assert torch.allclose(net.head.cls.bias, torch.full((3,), -math.log(99.0)))
    assert torch.all(net.head.conv.bias == 0)
    assert bias_init_with_prob(0.01) == pytest.approx(-4.59512, abs=1e-5)


def test_init_weights_runs_once():
    net = Net(init_cfg=dict(type='Constant', layer='Linear', val=1))
    net.init_weights()
    net.fc.weight.data.fill_(9)
    with pytest.warns(UserWarning, match='more than once'):
        net.init_weights()
    assert torch.all(net.fc.weight == 9)


def test_override_with_name_only_reuses_outer_args_and_base_class_names():
    net = Net(init_cfg=dict(type='Constant', layer='_BatchNorm', val=4, override=dict(name='stem')))
    net.init_weights()
    assert torch.all(net.head.bn.weight == 4) and torch.all(net.head.bn.bias == 0)
    assert torch.all(net.stem.weight == 4)


def test_all_initializers_run():
    for t in ['Xavier', 'Normal', 'TruncNormal', 'Uniform', 'Kaiming', 'Caffe2Xavier']:
        m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 8))
        initialize(m, dict(type=t, layer=['Conv2d', 'Linear'], bias=0.5))
        assert torch.all(m[0].bias == 0.5) and torch.all(m[1].bias == 0.5), t
    m = nn.Linear(100, 100)
    initialize(m, dict(type='TruncNormal', layer='Linear', std=1.0, a=-0.5, b=0.5))
    assert m.weight.abs().max() <= 0.5
    m = nn.Linear(100, 10)
    initialize(m, dict(type='Uniform', layer='Linear', a=2, b=3))
    assert m.weight.min() >= 2 and m.weight.max() <= 3
    assert set(WEIGHT_INITIALIZERS) >= {'Constant', 'Xavier', 'Normal', 'TruncNormal', 'Uniform', 'Kaiming',
                                        'Caffe2Xavier', 'Pretrained'}


def test_pretrained_loads_after_random_init(tmp_path):
    src = Net()
    for p in src.parameters():
        p.data.uniform_()
    torch.save(dict(meta=dict(epoch=1), state_dict={f'backbone.{k}': v for k, v in src.state_dict().items()}),
               tmp_path / 'ckpt.pth')
    dst = Net(init_cfg=[dict(type='Constant', layer='Conv2d', val=0),
                        dict(type='Pretrained', checkpoint=str(tmp_path / 'ckpt.pth'), prefix='backbone.')])
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        Net(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'missing.pth'))).init_weights()


def test_bad_init_cfgs():
    with pytest.raises(KeyError):
        initialize(nn.Linear(2, 2), dict(type='NoSuchInit'))
    with pytest.raises(ValueError, match='"name"'):
        initialize(nn.Linear(2, 2), dict(type='Constant', val=1, override=dict(type='Constant', val=1)))
    with pytest.raises(RuntimeError, match="no child module 'nope'"):
        initialize(Net(), dict(type='Constant', val=1, override=dict(name='nope')))
    with pytest.warns(UserWarning, match='initialises nothing'):
        initialize(nn.Linear(2, 2), dict(type='Constant', val=1))


def test_abstract_methods_are_enforced():
    from abc import abstractmethod

    from kiln.model import BaseModel

    class NoForward(BaseModel):
        pass

    with pytest.raises(TypeError, match='abstract.*forward'):
        NoForward()

    class Head(BaseModule):
        @abstractmethod
        def loss(self):
            ...

    class Concrete(Head):
        def loss(self):
            return 0

    with pytest.raises(TypeError, match='loss'):
        Head()
    assert Concrete().loss() == 0 and isinstance(Concrete(), torch.nn.Module)
