"""ResNet depths / norms against torchvision, and ``init_cfg=dict(type='Pretrained', ...)`` from a local file, from
the torch hub cache (``torchvision://``) and the error on an offline machine. No test touches the network."""
import urllib.error

import pytest
import torch
from torch import nn

from kiln.det.models.backbones import ResNet
from kiln.model.weight_init import hub_cache_path


@pytest.mark.parametrize('depth', [18, 34, 50, 101])
def test_state_dict_matches_torchvision_resnet(depth):
    import torchvision
    tv = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    tv_sd = {k: v for k, v in tv.state_dict().items() if not k.startswith('fc.')}
    ours = ResNet(depth).state_dict()
    assert list(ours) == list(tv_sd)
    assert all(ours[k].shape == v.shape for k, v in tv_sd.items())


def test_norm_types_name_layers_like_mmdetection():
    gn = ResNet(18, norm_cfg=dict(type='GN', num_groups=16), frozen_stages=-1)
    keys = set(gn.state_dict())
    assert {'gn1.weight', 'layer1.0.gn1.weight', 'layer1.0.gn2.bias', 'layer2.0.downsample.1.weight'} <= keys
    assert isinstance(gn.layer1[0].norm2, nn.GroupNorm) and gn.layer1[0].norm2 is gn.layer1[0].gn2
    sync = ResNet(18, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(sync.bn1, nn.SyncBatchNorm) and isinstance(sync.layer4[0].downsample[1], nn.SyncBatchNorm)
    frozen_bn = ResNet(18, norm_cfg=dict(type='BN', requires_grad=False), frozen_stages=-1)
    assert not any(p.requires_grad for n, p in frozen_bn.named_parameters() if 'bn' in n or 'downsample.1' in n)
    assert all(p.requires_grad for n, p in frozen_bn.named_parameters() if 'conv' in n)


def test_with_cp_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = ResNet(18, frozen_stages=-1, norm_eval=False)
    cp = ResNet(18, frozen_stages=-1, norm_eval=False, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    outs = [m.eval()(x)[-1] for m in (plain, cp)]
    torch.testing.assert_close(outs[0], outs[1])
    grads = [torch.autograd.grad(o.sum(), x)[0] for o in outs]
    torch.testing.assert_close(grads[0], grads[1])


def _random_tv_resnet18_state():
    import torchvision
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_pretrained_from_local_mmdet_style_file(tmp_path):
    state = {f'backbone.{k}': v for k, v in _random_tv_resnet18_state().items() if not k.startswith('fc.')}
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 12}}, path)
    model = ResNet(18, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    assert all(torch.equal(v, state[f'backbone.{k}']) for k, v in model.state_dict().items())


def test_pretrained_torchvision_scheme_reads_the_hub_cache(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    cached = hub_cache_path(ResNet18_Weights.IMAGENET1K_V1.url)
    assert cached.startswith(str(tmp_path)) and cached.endswith('resnet18-f37072fd.pth')
    state = _random_tv_resnet18_state()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(state, cached)

    def no_network(*args, **kwargs):
        raise AssertionError('the cached file must be used, not downloaded')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    model = ResNet(18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'))
    with pytest.warns(UserWarning, match='fc.weight'):  # torchvision's classifier has no place in the backbone
        model.init_weights()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_pretrained_offline_and_not_cached_names_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError('Temporary failure in name resolution')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    model = ResNet(50, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
    expected = str(tmp_path / 'hub' / 'checkpoints' / 'resnet50-0676ba61.pth')
    with pytest.raises(FileNotFoundError, match='torch hub cache') as err:
        model.init_weights()
    assert expected in str(err.value) and 'torchvision://resnet50' in str(err.value)
    caffe = ResNet(50, style='caffe', init_cfg=dict(type='Pretrained',
                                                    checkpoint='open-mmlab://detectron/resnet50_caffe'))
    with pytest.raises(FileNotFoundError, match='resnet50_caffe-788b5fa3.pth'):
        caffe.init_weights()
    with pytest.raises(KeyError, match='unknown open-mmlab'):
        ResNet(18, init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://nope')).init_weights()
