"""ExponentialMovingAverage / MomentumAnnealingEMA: MMEngine's momentum convention, interval, buffers, state."""
import copy

import pytest
import torch
from torch import nn

from kiln.model import BaseAveragedModel, ExponentialMovingAverage, MomentumAnnealingEMA
from kiln.registry import MODELS


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def perturb(model, k):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * k)
        model[1].running_mean.add_(1.0)
        model[1].num_batches_tracked.add_(1)


def test_ema_formula_and_first_copy():
    model = net()
    ema = ExponentialMovingAverage(model, momentum=0.25)
    assert isinstance(ema, BaseAveragedModel) and isinstance(ema, torch.optim.swa_utils.AveragedModel)
    assert all(not p.requires_grad for p in ema.module.parameters())
    expected = [p.detach().clone() for p in model.parameters()]
    ema.update_parameters(model)  # first call copies
    for e, p in zip(ema.module.parameters(), expected):
        torch.testing.assert_close(e, p)
    for k in range(1, 4):
        perturb(model, k)
        ema.update_parameters(model)
        expected = [(1 - 0.25) * e + 0.25 * p.detach() for e, p in zip(expected, model.parameters())]
    for e, p in zip(ema.module.parameters(), expected):
        torch.testing.assert_close(e, p)
    # buffers are copied (update_buffers=False)
    torch.testing.assert_close(ema.module[1].running_mean, model[1].running_mean)
    assert int(ema.steps) == 4
    x = torch.randn(5, 3)
    ema.eval()
    torch.testing.assert_close(ema(x), ema.module(x))


def test_matches_torch_get_ema_multi_avg_fn():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    model = net()
    ours = ExponentialMovingAverage(model, momentum=0.1)
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    for k in range(4):
        perturb(model, k)
        ours.update_parameters(model)
        theirs.update_parameters(model)
    for a, b in zip(ours.module.parameters(), theirs.module.parameters()):
        torch.testing.assert_close(a, b)


def test_interval_and_update_buffers():
    model = net()
    ema = ExponentialMovingAverage(model, momentum=0.5, interval=2, update_buffers=True)
    w = model[0].weight
    values = []
    for k in range(5):
        perturb(model, 1)
        ema.update_parameters(model)
        values.append(w.detach().clone())
    # calls 0 (copy), 2 and 4 update; calls 1 and 3 leave the average alone
    expected = values[0]
    expected = 0.5 * expected + 0.5 * values[2]
    expected = 0.5 * expected + 0.5 * values[4]
    torch.testing.assert_close(ema.module[0].weight, expected)
    # running_mean averaged, num_batches_tracked (int) copied at averaging steps
    assert not torch.allclose(ema.module[1].running_mean, model[1].running_mean)
    assert int(ema.module[1].num_batches_tracked) == int(model[1].num_batches_tracked)


def test_momentum_annealing():
    model = net()
    ema = MomentumAnnealingEMA(model, momentum=0.01, gamma=4)
    ema.update_parameters(model)  # copy
    prev = model[0].weight.detach().clone()
    perturb(model, 1)
    ema.update_parameters(model)  # steps=1 -> momentum = max(0.01, 4 / 5)
    torch.testing.assert_close(ema.module[0].weight, 0.2 * prev + 0.8 * model[0].weight.detach())


def test_state_dict_roundtrip_and_registry(tmp_path):
    model = net()
    ema = MODELS.build(dict(type='ExponentialMovingAverage', model=model, momentum=0.5, interval=3))
    assert type(ema) is ExponentialMovingAverage
    for _ in range(4):
        ema.update_parameters(model)
    torch.save(ema.state_dict(), tmp_path / 'ema.pth')
    state = torch.load(tmp_path / 'ema.pth', weights_only=True)
    other = ExponentialMovingAverage(net(1), momentum=0.5, interval=3)
    other.load_state_dict(state)
    assert other._steps == 4 and int(other.n_averaged) == int(ema.n_averaged)
    # an MMEngine-style state dict (no n_averaged) loads too
    del state['n_averaged']
    other.load_state_dict(state)
    assert int(other.n_averaged) == 4
    assert copy.deepcopy(other).multi_avg_fn.__self__ is not other  # deep copies average themselves


def test_errors():
    with pytest.raises(ValueError, match='momentum'):
        ExponentialMovingAverage(net(), momentum=1.5)
    with pytest.raises(ValueError, match='interval'):
        ExponentialMovingAverage(net(), interval=0)
    with pytest.raises(ValueError, match='gamma'):
        MomentumAnnealingEMA(net(), gamma=0)
    with pytest.warns(UserWarning, match='1 - momentum'):
        ExponentialMovingAverage(net(), momentum=0.9)
