import pytest
import torch
import torch.nn.functional as F

from kiln.det.models.necks import FPN

IN_CHANNELS = [16, 32, 64, 128]


def _inputs(n=1, size=64):
    return [torch.randn(n, c, size // s, size // s) for c, s in zip(IN_CHANNELS, (4, 8, 16, 32))]


@pytest.mark.parametrize('extra', ['on_input', 'on_lateral', 'on_output'])
def test_fpn_extra_convs_shapes_and_keys(extra):
    fpn = FPN(IN_CHANNELS, 8, num_outs=5, start_level=1, add_extra_convs=extra, relu_before_extra_convs=True)
    outs = fpn(_inputs())
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1), (1, 8, 1, 1)]
    keys = set(fpn.state_dict())
    assert {'lateral_convs.0.conv.weight', 'fpn_convs.0.conv.weight', 'fpn_convs.4.conv.bias'} <= keys
    in_ch = 128 if extra == 'on_input' else 8
    assert fpn.fpn_convs[3].conv.in_channels == in_ch


def test_fpn_top_down_values_and_maxpool_extra_level():
    fpn = FPN(IN_CHANNELS[:2], 4, num_outs=3)
    x = [torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    outs = fpn(x)
    lat1 = F.conv2d(x[1], fpn.lateral_convs[1].conv.weight, fpn.lateral_convs[1].conv.bias)
    lat0 = F.conv2d(x[0], fpn.lateral_convs[0].conv.weight, fpn.lateral_convs[0].conv.bias)
    lat0 = lat0 + F.interpolate(lat1, size=(8, 8), mode='nearest')
    ref0 = F.conv2d(lat0, fpn.fpn_convs[0].conv.weight, fpn.fpn_convs[0].conv.bias, padding=1)
    torch.testing.assert_close(outs[0], ref0)
    torch.testing.assert_close(outs[2], outs[1][..., ::2, ::2])  # max_pool2d(kernel 1, stride 2)


def test_fpn_init_and_errors():
    fpn = FPN(IN_CHANNELS, 8, num_outs=4)
    fpn.init_weights()  # Xavier-uniform, bias 0
    assert torch.all(fpn.fpn_convs[0].conv.bias == 0)
    with pytest.raises(ValueError, match='4 input levels'):
        fpn(_inputs()[:3])
    with pytest.raises(ValueError, match='add_extra_convs'):
        FPN(IN_CHANNELS, 8, num_outs=5, add_extra_convs='on_top')
    with pytest.raises(ValueError, match='num_outs'):
        FPN(IN_CHANNELS, 8, num_outs=2)
