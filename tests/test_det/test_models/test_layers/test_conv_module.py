import pytest
import torch
from torch import nn

from kiln.det.models.layers import ConvModule, Scale, build_norm_layer


def test_conv_module_gn_names_and_no_bias():
    m = ConvModule(8, 32, 3, padding=1, norm_cfg=dict(type='GN', num_groups=8))
    keys = set(m.state_dict())
    assert keys == {'conv.weight', 'gn.weight', 'gn.bias'}  # bias='auto' drops the conv bias under a norm
    assert isinstance(m.activate, nn.ReLU)
    x = torch.randn(2, 8, 5, 7)
    ref = torch.relu(m.gn(m.conv(x)))
    torch.testing.assert_close(m(x), ref)


def test_conv_module_plain_has_bias_and_no_act():
    m = ConvModule(4, 6, 1, act_cfg=None)
    assert set(m.state_dict()) == {'conv.weight', 'conv.bias'}
    assert m.norm is None
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(m(x), m.conv(x))


def test_build_norm_layer_names_and_requires_grad():
    name, bn = build_norm_layer(dict(type='BN', requires_grad=False), 16, postfix=1)
    assert name == 'bn1' and isinstance(bn, nn.BatchNorm2d)
    assert not any(p.requires_grad for p in bn.parameters())
    name, gn = build_norm_layer(dict(type='GN', num_groups=4), 16)
    assert name == 'gn' and gn.num_groups == 4 and gn.num_channels == 16
    with pytest.raises(ValueError, match='num_groups'):
        build_norm_layer(dict(type='GN'), 16)
    with pytest.raises(KeyError, match='Foo'):
        build_norm_layer(dict(type='Foo'), 16)


def test_scale_is_a_0dim_parameter():
    s = Scale(2.0)
    assert s.scale.shape == () and s.scale.requires_grad
    torch.testing.assert_close(s(torch.ones(3)), torch.full((3,), 2.0))
