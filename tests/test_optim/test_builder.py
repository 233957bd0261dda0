import pytest
import torch
from torch import nn

from kiln.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper, build_optim_wrapper
from kiln.registry import OPTIMIZERS


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.dw = nn.Conv2d(4, 4, 3, groups=4)
        self.head = nn.Linear(4, 2)


def groups_by_name(model, ow):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(g['params'][0])]: g for g in ow.param_groups}


def test_all_torch_optimizers_registered():
    for name in ('SGD', 'Adam', 'AdamW', 'RMSprop', 'Adagrad'):
        assert OPTIMIZERS.get(name) is getattr(torch.optim, name)


def test_build_plain():
    model = Net()
    ow = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                                         clip_grad=dict(max_norm=10), accumulative_counts=2))
    assert type(ow) is OptimWrapper and isinstance(ow.optimizer, torch.optim.SGD)
    assert ow._accumulative_counts == 2 and ow.clip_grad_kwargs == dict(max_norm=10)
    assert len(ow.param_groups) == 1 and len(ow.param_groups[0]['params']) == len(list(model.parameters()))
    amp = build_optim_wrapper(model, dict(type='AmpOptimWrapper', dtype='bfloat16',
                                          optimizer=dict(type='AdamW', lr=1e-3)))
    assert isinstance(amp, AmpOptimWrapper)


def test_paramwise_cfg():
    model = Net()
    ow = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.1, weight_decay=0.01),
        paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0, dwconv_decay_mult=0.1,
                           custom_keys={'head': dict(lr_mult=0.1, decay_mult=0.0), 'head.bias': dict(lr_mult=3.0)})))
    g = groups_by_name(model, ow)
    assert g['backbone.0.weight']['lr'] == 0.1 and g['backbone.0.weight']['weight_decay'] == 0.01
    assert g['backbone.0.bias']['lr'] == pytest.approx(0.2)
    assert g['backbone.0.bias']['weight_decay'] == pytest.approx(0.005)
    assert g['backbone.1.weight']['weight_decay'] == 0 and g['backbone.1.bias']['weight_decay'] == 0
    assert g['backbone.1.bias']['lr'] == 0.1           # norm biases keep the base lr
    assert g['dw.weight']['weight_decay'] == pytest.approx(0.001)
    assert g['head.weight']['lr'] == pytest.approx(0.01) and g['head.weight']['weight_decay'] == 0
    assert g['head.bias']['lr'] == pytest.approx(0.3)  # longest key wins
    assert g['head.bias']['weight_decay'] == pytest.approx(0.01)


def test_paramwise_global_mults_and_frozen_params():
    model = Net()
    model.head.weight.requires_grad_(False)
    ctor = DefaultOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=0.1)),
                                          paramwise_cfg=dict(lr_mult=0.5, decay_mult=2.0))
    g = groups_by_name(model, ctor(model))
    assert g['backbone.0.weight']['lr'] == pytest.approx(0.05)
    assert g['backbone.0.weight']['weight_decay'] == pytest.approx(0.2)
    assert g['head.weight']['lr'] == 0.1  # frozen: untouched


def test_constructor_errors():
    with pytest.raises(KeyError, match="'optimizer'"):
        DefaultOptimWrapperConstructor(dict(type='OptimWrapper'))
    with pytest.raises(KeyError, match='bias_lr_mul'):
        DefaultOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)), dict(bias_lr_mul=2))
    with pytest.raises(ValueError, match='weight_decay'):
        DefaultOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)), dict(norm_decay_mult=0))
    with pytest.raises(KeyError):
        build_optim_wrapper(Net(), dict(optimizer=dict(type='NoSuchOpt', lr=0.1)))
