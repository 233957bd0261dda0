"""A plain model's checkpoint loads into a BaseTTAModel wrapping it (MMEngine unwraps TTA models when loading)."""
import pytest
import torch
from torch import nn

from kiln.checkpoint import CheckpointError, load_checkpoint
from kiln.model import BaseModel, BaseTTAModel


class TinyNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.bn(self.conv(inputs))


class FirstViewTTA(BaseTTAModel):
    def merge_preds(self, data_samples_list):
        return [views[0] for views in data_samples_list]


def _trained_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.bn.running_mean.uniform_()
    path = tmp_path / 'tiny.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict=model.state_dict()), path)
    return model, path


@pytest.mark.parametrize('nested', [False, True])
def test_plain_checkpoint_loads_into_tta_model(tmp_path, nested):
    model, path = _trained_checkpoint(tmp_path)
    torch.manual_seed(1)
    tta = FirstViewTTA(module=TinyNet())
    if nested:  # a TTA model inside a model wrapper (DataParallel), as the runner may hold it
        tta = nn.DataParallel(tta)
    inner = tta.module.module if nested else tta.module
    assert not torch.equal(inner.conv.weight, model.conv.weight)
    checkpoint = load_checkpoint(tta, path, strict=True)
    assert checkpoint['meta'] == dict(epoch=3)
    for key, value in model.state_dict().items():
        assert torch.equal(inner.state_dict()[key], value), key


def test_tta_checkpoint_loads_back_into_plain_model(tmp_path):
    """The TTA model's own state dict has ``module.`` keys; the default revise_keys strip them."""
    model, path = _trained_checkpoint(tmp_path)
    tta = FirstViewTTA(module=TinyNet())
    load_checkpoint(tta, path, strict=True)
    tta_path = tmp_path / 'tta.pth'
    torch.save(dict(state_dict=tta.state_dict()), tta_path)
    plain = TinyNet()
    load_checkpoint(plain, tta_path, strict=True)
    torch.testing.assert_close(plain.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_wrong_checkpoint_into_tta_model_names_the_file(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=nn.Linear(2, 2).state_dict()), path)
    with pytest.raises(CheckpointError, match='other.pth'):
        load_checkpoint(FirstViewTTA(module=TinyNet()), path)
