"""OptimWrapper accumulation across epochs, AMP float16 scaler state, builder forms, constructors, scale_lr."""
import logging

import pytest
import torch
from torch import nn

from kiln.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict,
                        build_optim_wrapper, scale_lr)
from kiln.registry import OPTIM_WRAPPER_CONSTRUCTORS


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_accumulation_spanning_epochs_equals_large_batch_steps():
    """2 epochs of 5 iterations, accumulative_counts=3: windows of 3, 3, 3 iterations then a last one of 1
    (windows continue across the epoch boundary, as in MMEngine). Each optimizer step must equal one SGD step
    on the concatenated batches of its window, including the short last window."""
    torch.manual_seed(1)
    xs, ys = torch.randn(10, 2, 4), torch.randn(10, 2, 1)
    model, ref = mlp(), mlp()
    ref.load_state_dict(model.state_dict())
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), accumulative_counts=3)
    ow.initialize_count_status(model, 0, 10)
    for epoch in range(2):
        for i in range(5):
            it = epoch * 5 + i
            with ow.optim_context(model):
                loss = ((model(xs[it]) - ys[it]) ** 2).mean()
            ow.update_params(loss)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for lo, hi in ((0, 3), (3, 6), (6, 9), (9, 10)):
        opt.zero_grad()
        ((ref(xs[lo:hi].flatten(0, 1)) - ys[lo:hi].flatten(0, 1)) ** 2).mean().backward()
        opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zeroed after the last step


def test_clip_grad_norm_keeps_tensor_norm():
    model = mlp()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), clip_grad=dict(max_norm=0.01))
    loss = model(torch.ones(3, 4)).sum() * 100
    loss.backward(retain_graph=True)
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    ow.zero_grad()
    ow.update_params(loss)
    assert isinstance(ow.last_grad_norm, torch.Tensor) and ow.last_grad_norm.ndim == 0
    torch.testing.assert_close(ow.last_grad_norm, expected)


def test_amp_float16_grad_scaler_state_saved_and_restored(tmp_path):
    model = mlp()
    ow = AmpOptimWrapper(dtype='float16', loss_scale=dict(init_scale=1024.0, growth_interval=1),
                         optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    assert ow.loss_scaler is not None
    for _ in range(2):
        with ow.optim_context(model):
            out = model(torch.ones(2, 4))
            assert out.dtype == torch.float16
        ow.update_params(out.float().mean())
    assert ow.loss_scaler.get_scale() == 4096.0  # grew once per finite step
    torch.save(ow.state_dict(), tmp_path / 'amp.pth')
    state = torch.load(tmp_path / 'amp.pth', weights_only=True)
    assert state['loss_scaler']['scale'] == 4096.0
    other = AmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(mlp().parameters(), lr=0.5))
    other.load_state_dict(state)
    assert other.loss_scaler.get_scale() == 4096.0 and other.get_lr() == {'lr': [0.01]}
    static = AmpOptimWrapper(dtype='float16', loss_scale=512.0,
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    with static.optim_context(model):
        loss = model(torch.ones(2, 4)).float().mean()
    static.update_params(loss)
    assert static.loss_scaler.get_scale() == 512.0  # a static scale stays fixed


def test_build_from_built_optimizer_and_dict_of_wrappers():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    ow = build_optim_wrapper(model, dict(optimizer=opt, clip_grad=dict(max_norm=1.0)))
    assert type(ow) is OptimWrapper and ow.optimizer is opt
    gen, disc = OptimWrapper(torch.optim.SGD(model[0].parameters(), lr=0.1)), OptimWrapper(opt)
    d = build_optim_wrapper(model, dict(generator=gen, discriminator=disc))
    assert isinstance(d, OptimWrapperDict) and d['generator'] is gen
    with pytest.raises(ValueError, match='every value must be a built OptimWrapper'):
        build_optim_wrapper(model, dict(generator=dict(type='SGD', lr=0.1)))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class TwoOptimizersConstructor:
    """A custom constructor: one optimizer per top-level child (MMEngine's multi-optimizer pattern)."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.cfgs = optim_wrapper_cfg

    def __call__(self, model):
        return OptimWrapperDict(**{name: DefaultOptimWrapperConstructor(dict(cfg))(getattr(model, name))
                                   for name, cfg in self.cfgs.items()})


def test_custom_constructor_from_registry():
    model = nn.Module()
    model.generator, model.discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
    d = build_optim_wrapper(model, dict(constructor='TwoOptimizersConstructor',
                                        generator=dict(optimizer=dict(type='Adam', lr=1e-4)),
                                        discriminator=dict(optimizer=dict(type='SGD', lr=1e-2))))
    assert d.get_lr() == {'generator.lr': [1e-4], 'discriminator.lr': [1e-2]}
    assert d['generator'].param_groups[0]['params'][0] is model.generator.weight


def test_flat_decay_mult_and_bypass_duplicate():
    model = nn.Module()
    model.conv = nn.Conv2d(3, 4, 3)
    model.bn = nn.BatchNorm2d(4)
    model.fc = nn.Linear(4, 2)
    model.fc2 = nn.Linear(4, 2)
    model.fc2.weight = model.fc.weight  # shared
    with pytest.warns(UserWarning, match='fc2.weight is shared'):
        ow = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=0.1),
                                             paramwise_cfg=dict(flat_decay_mult=0.0, bias_decay_mult=0.5,
                                                                norm_decay_mult=2.0, bypass_duplicate=True)))
    names = {id(p): n for n, p in model.named_parameters()}  # first name of a shared parameter
    wd = {names[id(g['params'][0])]: g['weight_decay'] for g in ow.param_groups}
    assert len(ow.param_groups) == 7  # conv w/b, bn w/b, fc w/b, fc2 b (fc2.weight skipped)
    assert wd['conv.weight'] == pytest.approx(0.1) and wd['fc.weight'] == pytest.approx(0.1)
    assert wd['conv.bias'] == pytest.approx(0.05)                   # bias rule before flat rule
    assert wd['bn.weight'] == pytest.approx(0.2) and wd['bn.bias'] == pytest.approx(0.2)  # norm first
    with pytest.raises(ValueError, match='some parameters appear in more than one parameter group'):
        build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=0.1),
                                        paramwise_cfg=dict(flat_decay_mult=0.0)))


def test_scale_lr_built_wrappers_and_configs(caplog):
    model = mlp()
    ow = OptimWrapper(torch.optim.SGD([{'params': model[0].parameters(), 'lr': 0.2},
                                       {'params': model[2].parameters()}], lr=0.1))
    logger = logging.getLogger('kiln.test.scale_lr')
    with caplog.at_level(logging.INFO, logger='kiln.test.scale_lr'):
        assert scale_lr(ow, dict(enable=True, base_batch_size=16), 32, logger) == 2.0
    assert ow.get_lr()['lr'] == pytest.approx([0.4, 0.2])
    assert 'scaled by 2' in caplog.text
    assert scale_lr(ow, dict(enable=False, base_batch_size=16), 32) is None
    d = OptimWrapperDict(a=OptimWrapper(torch.optim.SGD(model[0].parameters(), lr=0.1)))
    scale_lr(d, dict(enable=True, base_batch_size=8), 2)
    assert d.get_lr() == {'a.lr': [pytest.approx(0.025)]}
    cfg = dict(optimizer=dict(type='SGD', lr=0.02))
    assert scale_lr(cfg, dict(enable=True, base_batch_size=16), 4) == 0.25
    assert cfg['optimizer']['lr'] == pytest.approx(0.005)
    multi = dict(constructor='X', gen=dict(optimizer=dict(lr=1.0)), disc=dict(optimizer=dict(lr=2.0)))
    scale_lr(multi, dict(enable=True, base_batch_size=2), 1)
    assert (multi['gen']['optimizer']['lr'], multi['disc']['optimizer']['lr']) == (0.5, 1.0)
    with pytest.raises(KeyError, match='base_batch_size'):
        scale_lr(ow, dict(enable=True), 4)
