"""QuadraticWarmup* schedulers, MultiOptimWrapperConstructor and StochasticWeightAverage."""
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from kiln.hooks import EMAHook
from kiln.model import StochasticWeightAverage
from kiln.optim import (OptimWrapperDict, QuadraticWarmupLR, QuadraticWarmupMomentum,
                        QuadraticWarmupParamScheduler, build_optim_wrapper)
from kiln.registry import PARAM_SCHEDULERS
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


def _sgd(lr=1.0, momentum=0.9):
    return torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=lr, momentum=momentum)


# ------------------------------------------------------------------------------------------ QuadraticWarmup
def test_quadratic_warmup_lr_follows_the_square_law_then_holds():
    opt = _sgd(lr=0.5)
    sched = QuadraticWarmupLR(opt, begin=0, end=4, by_epoch=False)
    values = [opt.param_groups[0]['lr']]
    for _ in range(6):
        sched.step()
        values.append(opt.param_groups[0]['lr'])
    expected = [0.5 * ((t + 1) / 4) ** 2 for t in range(4)] + [0.5] * 3
    assert values == pytest.approx(expected)


def test_quadratic_warmup_momentum_and_generic_param():
    opt = _sgd(momentum=0.8)
    QuadraticWarmupMomentum(opt, begin=0, end=2, by_epoch=False)
    assert opt.param_groups[0]['momentum'] == pytest.approx(0.8 / 4)
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0, weight_decay=0.2)
    sched = QuadraticWarmupParamScheduler(opt, 'weight_decay', begin=0, end=2, by_epoch=False)
    sched.step()
    assert opt.param_groups[0]['weight_decay'] == pytest.approx(0.2)


def test_quadratic_warmup_needs_finite_end_and_converts_epochs_to_iters():
    with pytest.raises(ValueError, match='end'):
        QuadraticWarmupLR(_sgd())
    opt = _sgd(lr=1.0)
    sched = PARAM_SCHEDULERS.get('QuadraticWarmupLR').build_iter_from_epoch(opt, begin=0, end=2,
                                                                           epoch_length=5)
    assert (sched.begin, sched.end, sched.by_epoch) == (0, 10, False)
    assert opt.param_groups[0]['lr'] == pytest.approx(1 / 100)


def test_quadratic_warmup_state_dict_resumes_the_same_sequence():
    opt_a = _sgd()
    a = QuadraticWarmupLR(opt_a, begin=0, end=5, by_epoch=False)
    a.step()
    a.step()
    opt_b = _sgd()
    b = QuadraticWarmupLR(opt_b, begin=0, end=5, by_epoch=False)
    b.load_state_dict(a.state_dict())
    opt_b.param_groups[0]['lr'] = opt_a.param_groups[0]['lr']
    a.step()
    b.step()
    assert opt_b.param_groups[0]['lr'] == opt_a.param_groups[0]['lr']


# -------------------------------------------------------------------------------- MultiOptimWrapperConstructor
class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.discriminator = nn.Linear(4, 1)


def test_multi_optim_wrapper_constructor_builds_one_wrapper_per_child():
    model = GAN()
    wrapper = build_optim_wrapper(model, dict(
        constructor='MultiOptimWrapperConstructor',
        generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.1),
                       paramwise_cfg=dict(norm_decay_mult=0.0)),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=4e-4))))
    assert isinstance(wrapper, OptimWrapperDict)
    gen, disc = wrapper['generator'], wrapper['discriminator']
    assert isinstance(gen.optimizer, torch.optim.Adam) and isinstance(disc.optimizer, torch.optim.SGD)
    gen_params = {id(p) for g in gen.optimizer.param_groups for p in g['params']}
    assert gen_params == {id(p) for p in model.generator.parameters()}
    assert {id(p) for g in disc.optimizer.param_groups for p in g['params']} == \
        {id(p) for p in model.discriminator.parameters()}
    # the child's own paramwise_cfg applied: BN weight/bias without weight decay, linear weight with it
    decays = {tuple(p.shape): g['weight_decay'] for g in gen.optimizer.param_groups for p in g['params']}
    assert decays[(4, 4)] == pytest.approx(0.1)
    bn_groups = [g for g in gen.optimizer.param_groups if g['params'][0] is model.generator[1].weight]
    assert bn_groups[0]['weight_decay'] == 0.0
    assert wrapper.get_lr() == {'generator.lr': [1e-4] * len(gen.optimizer.param_groups),
                                'discriminator.lr': [4e-4]}


def test_multi_optim_wrapper_constructor_errors_name_the_problem():
    with pytest.raises(AttributeError, match="no child module 'critic'.*generator"):
        build_optim_wrapper(GAN(), dict(constructor='MultiOptimWrapperConstructor',
                                        critic=dict(optimizer=dict(type='SGD', lr=0.1))))
    with pytest.raises(ValueError, match='inside each child'):
        build_optim_wrapper(GAN(), dict(constructor='MultiOptimWrapperConstructor',
                                        paramwise_cfg=dict(norm_decay_mult=0.0),
                                        generator=dict(optimizer=dict(type='SGD', lr=0.1))))


# ------------------------------------------------------------------------------------ StochasticWeightAverage
def test_swa_equals_torch_averaged_model_running_mean():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ours = StochasticWeightAverage(model, interval=1)
    reference = AveragedModel(model)  # torch's default: equal-weight running mean
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.update_parameters(model)
        reference.update_parameters(model)
    for a, b in zip(ours.module.parameters(), reference.module.parameters()):
        torch.testing.assert_close(a, b)


def test_swa_interval_averages_every_nth_snapshot():
    model = nn.Linear(1, 1, bias=False)
    swa = StochasticWeightAverage(model, interval=2)
    for i in range(7):
        with torch.no_grad():
            model.weight.fill_(float(i))
        swa.update_parameters(model)
    assert swa.module.weight.item() == pytest.approx((0 + 2 + 4 + 6) / 4)
    assert int(swa.steps) == 7


def test_emahook_with_swa_checkpoint_holds_the_mean_of_the_iterates(tmp_path):
    seen = []

    class Record(EMAHook.__mro__[1]):  # a plain Hook, after EMAHook (LOW priority)
        priority = 'LOW'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(runner.model.fc.weight.detach().clone())

    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, custom_hooks=[
        dict(type='EMAHook', ema_type='StochasticWeightAverage'), Record()]))
    runner.train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    torch.testing.assert_close(ckpt['state_dict']['fc.weight'], torch.stack(seen).mean(0))
