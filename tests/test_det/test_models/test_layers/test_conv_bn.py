"""BatchNorm folding at inference (kiln.det.models.layers.conv_bn): the folded conv computes what conv + BN
compute, it is really used (no BatchNorm runs) in eval mode without autograd, and nothing changes in training,
with autograd, or in the state dict."""
import copy

import pytest
import torch
from torch import nn

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.det.models.layers import ConvModule
from kiln.det.models.layers.conv_bn import set_bn_folding
from kiln.registry import MODELS


def _randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def _count_bn_calls(model):
    calls = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture(scope='module')
def resnet():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ResNet', depth=18, norm_eval=False, frozen_stages=-1))
    model.init_weights()
    return _randomise_bn(model).eval()


def test_folded_resnet_equals_conv_then_bn_and_skips_bn(resnet):
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    model = copy.deepcopy(resnet)
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    calls = _count_bn_calls(model)
    with torch.inference_mode():
        folded = model(x)
    assert not calls  # every BatchNorm was folded into its conv
    with torch.no_grad():  # the cache made under inference_mode is usable outside it
        folded_no_grad = model(x)
    assert set_bn_folding(model, False) == 1 + 8  # the stem and the 8 BasicBlocks
    with torch.no_grad():
        plain = model(x)
    assert len(calls) == 1 + 8 * 2 + 3  # stem + 2 per block + 3 downsample shortcuts
    for a, b, c in zip(folded, plain, folded_no_grad):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())
        assert torch.equal(a, c)
    state = model.state_dict()
    assert list(state) == list(keys) and all(torch.equal(state[k], v) for k, v in keys.items())


def test_not_folded_in_training_or_with_autograd(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    model = copy.deepcopy(resnet)
    calls = _count_bn_calls(model)
    out = model(x)  # eval mode, autograd on (e.g. gradients w.r.t. the input): BN runs, gradients reach it
    assert len(calls) == 20
    out[-1].sum().backward()
    assert model.layer4[1].bn2.weight.grad is not None
    model.train()
    model(x)
    assert len(calls) == 40


def test_folded_weights_follow_parameter_updates(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    model = copy.deepcopy(resnet)
    with torch.no_grad():
        model(x)
        model.bn1.running_var.mul_(4.0)  # e.g. a training step or load_state_dict in between
        model.layer1[0].conv1.weight.mul_(0.5)
        folded = model(x)
        set_bn_folding(model, False)
        plain = model(x)
    for a, b in zip(folded, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_train_mode_drops_the_cache(resnet):
    model = copy.deepcopy(resnet)
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    assert '_kiln_folded_bn' in model.conv1.__dict__
    model.train()
    assert not any('_kiln_folded_bn' in m.__dict__ for m in model.modules())


@pytest.mark.parametrize('norm_cfg, folds', [(dict(type='BN'), True), (dict(type='GN', num_groups=4), False)])
def test_conv_module(norm_cfg, folds):
    torch.manual_seed(0)
    m = _randomise_bn(ConvModule(8, 16, 3, padding=1, norm_cfg=norm_cfg)).eval()
    calls = []
    m.norm.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 8, 20, 24)
    with torch.no_grad():
        folded = m(x)
        assert len(calls) == (0 if folds else 1)
        set_bn_folding(m, False)
        plain = m(x)
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
