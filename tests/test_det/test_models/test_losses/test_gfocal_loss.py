import math

import pytest
import torch

from kiln.registry import MODELS


def _bce(x, t):  # binary cross-entropy of logit x against target t
    p = 1 / (1 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_quality_focal_loss_hand_computed():
    loss_fn = MODELS.build(dict(type='QualityFocalLoss', beta=2.0, loss_weight=1.0))
    pred = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    labels, scores = torch.tensor([1, 2]), torch.tensor([0.6, 0.0])  # row 0: class 1 with IoU 0.6; row 1: bg
    row0 = _bce(0.0, 0) * _sig(0.0) ** 2 + _bce(1.0, 0.6) * abs(0.6 - _sig(1.0)) ** 2
    row1 = _bce(2.0, 0) * _sig(2.0) ** 2 + _bce(-1.0, 0) * _sig(-1.0) ** 2
    assert loss_fn(pred, (labels, scores)).item() == pytest.approx((row0 + row1) / 2, rel=1e-5)
    none = loss_fn(pred, (labels, scores), reduction_override='none')
    torch.testing.assert_close(none, torch.tensor([row0, row1]))
    # the dense soft-target form gives the same values; avg_factor divides the sum
    dense = torch.tensor([[0.0, 0.6], [0.0, 0.0]])
    assert loss_fn(pred, dense, avg_factor=4.0).item() == pytest.approx((row0 + row1) / 4, rel=1e-5)
    with pytest.raises(ValueError, match='target shape'):
        loss_fn(pred, torch.zeros(2, 3))


def test_distribution_focal_loss_hand_computed():
    loss_fn = MODELS.build(dict(type='DistributionFocalLoss', loss_weight=0.25))
    pred = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    lse = math.log(1 + math.e + math.e ** 2 + math.e ** 3)
    # target 1.3: bin 1 weighted 0.7, bin 2 weighted 0.3
    expected = 0.7 * (lse - 1.0) + 0.3 * (lse - 2.0)
    assert loss_fn(pred, torch.tensor([1.3])).item() == pytest.approx(0.25 * expected, rel=1e-5)
    with pytest.raises(ValueError, match='DistributionFocalLoss'):
        loss_fn(pred, torch.tensor([[1.3]]))
