import pytest
import torch
from torch import nn

from kiln.det.models.backbones import ResNet


@pytest.mark.parametrize('depth,channels', [(18, (64, 128, 256, 512)), (50, (256, 512, 1024, 2048))])
def test_resnet_output_shapes(depth, channels):
    model = ResNet(depth).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))]


def test_resnet_out_indices_subset():
    model = ResNet(18, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 128, 8, 8), (2, 512, 2, 2)]


def test_resnet_matches_torchvision_keys_and_values():
    from torchvision.models import resnet18
    tv = resnet18(weights=None).eval()
    ours = ResNet(18).eval()
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.startswith('fc.')}
    assert set(ours.state_dict()) == set(tv_state)
    assert 'layer2.0.downsample.0.weight' in tv_state and 'layer1.0.conv1.weight' in tv_state
    ours.load_state_dict(tv_state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        torch.testing.assert_close(ours(x)[-1], ref)


def test_resnet_frozen_stages_and_norm_eval():
    model = ResNet(18, frozen_stages=1, norm_eval=True)
    model.train()
    for name, p in model.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1.'))
        assert p.requires_grad != frozen, name
    assert not model.layer1.training and not model.bn1.training
    assert model.layer2.training  # modules stay in train mode ...
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))  # ... BNs do not

    model = ResNet(18, frozen_stages=-1, norm_eval=False).train()
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(p.requires_grad for p in model.parameters())


def test_resnet_caffe_style_gn_and_zero_init():
    model = ResNet(50, style='caffe', norm_cfg=dict(type='GN', num_groups=32))
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    # MMDetection names the norm layers after their type: gn1..gn3 with GN (state-dict keys layer1.0.gn1.weight)
    assert isinstance(model.layer1[0].gn1, nn.GroupNorm) and model.norm1_name == 'gn1'
    assert 'layer1.0.gn3.weight' in model.state_dict() and not any('bn' in k for k in model.state_dict())
    model.init_weights()
    assert torch.all(model.layer1[0].gn3.weight == 0) and torch.all(model.layer1[0].gn1.weight == 1)


def test_resnet_bad_arguments():
    with pytest.raises(KeyError, match='depth'):
        ResNet(20)
    with pytest.raises(ValueError, match='out_indices'):
        ResNet(18, num_stages=3, out_indices=(0, 3))
    with pytest.raises(NotImplementedError, match='dcn'):
        ResNet(50, dcn=dict(type='DCNv2'))
