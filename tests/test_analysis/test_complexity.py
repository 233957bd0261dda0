"""get_model_complexity_info on a small CNN with hand-computed parameters, FLOPs and activations."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kiln.analysis import format_size, get_model_complexity_info
from kiln.model import BaseModel


class SmallCNN(BaseModel):
    """conv(3->8, 3x3, pad 1) -> BN -> ReLU -> conv(8->16, 3x3, stride 2, pad 1) -> depthwise conv(16, 3x3,
    pad 1) -> global pool -> linear(16->10)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.fc = nn.Linear(16, 10)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = self.dw(self.down(self.stem(inputs)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# hand-computed for a 1x3x32x32 input (one multiply-add = one flop, MMEngine convention)
STEM_FLOPS = 8 * 32 * 32 * 3 * 3 * 3          # 221184
DOWN_FLOPS = 16 * 16 * 16 * 8 * 3 * 3         # 294912
DW_FLOPS = 16 * 16 * 16 * 1 * 3 * 3           # 36864
FC_FLOPS = 16 * 10                            # 160
PARAMS = (8 * 3 * 9 + 8) + (8 + 8) + 16 * 8 * 9 + (16 * 9 + 16) + (16 * 10 + 10)
ACTS = 8 * 32 * 32 + 16 * 16 * 16 * 2 + 10


def test_counts_match_hand_computation():
    model = SmallCNN()
    model.train()
    info = get_model_complexity_info(model, input_shape=(3, 32, 32), show_arch=True)
    assert info['params'] == PARAMS == sum(p.numel() for p in model.parameters())
    assert info['flops'] == STEM_FLOPS + DOWN_FLOPS + DW_FLOPS + FC_FLOPS
    assert info['activations'] == ACTS
    assert info['flops_str'] == format_size(info['flops']) == '553K'
    assert info['params_str'] == format_size(PARAMS)
    assert model.training  # training flag restored
    table = info['out_table']
    assert '#parameters or shape' in table and '#flops' in table
    row = next(line for line in table.splitlines() if line.startswith('|   down '))
    assert '295K' in row and '4.1K' in row  # down: 294912 flops, 4096 activations
    assert '(16, 8, 3, 3)' in table
    assert '(dw): Conv2d(16, 16' in info['out_arch'] and '#flops: 36.9K' in info['out_arch']


def test_inputs_argument_and_batch_scaling():
    model = SmallCNN()
    one = get_model_complexity_info(model, inputs=torch.randn(1, 3, 32, 32), show_table=False)
    two = get_model_complexity_info(model, inputs=(torch.randn(2, 3, 32, 32),), show_table=False)
    assert two['flops'] == 2 * one['flops'] and two['activations'] == 2 * one['activations']
    assert one['out_table'] == '' and one['out_arch'] == ''


def test_errors():
    with pytest.raises(ValueError, match='exactly one'):
        get_model_complexity_info(SmallCNN())
    with pytest.raises(ValueError, match='exactly one'):
        get_model_complexity_info(SmallCNN(), input_shape=(3, 8, 8), inputs=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match='positive ints'):
        get_model_complexity_info(SmallCNN(), input_shape=(3, -1, 8))


def test_format_size():
    assert format_size(999) == '999' and format_size(1234) == '1.23K' and format_size(2.5e9) == '2.5G'
