"""CosineRestart, OneCycle and ReduceOnPlateau schedulers: value sequences side by side with torch."""
import math
from pathlib import Path

import pytest
import torch
from torch.optim import lr_scheduler as tls

import kiln.optim as ko
from kiln.optim import (CosineRestartLR, CosineRestartMomentum, OneCycleLR,
                        OptimWrapper, ReduceOnPlateauLR, ReduceOnPlateauMomentum, ReduceOnPlateauParamScheduler)
from kiln.registry import PARAM_SCHEDULERS

LR = 0.1


def make_opt(lr=LR, n_groups=1):
    params = [{'params': [torch.nn.Parameter(torch.zeros(1))], 'lr': lr * (i + 1)} for i in range(n_groups)]
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def run(build, steps, wrap=True):
    opt = make_opt()
    sched = build(OptimWrapper(opt) if wrap else opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return values


def test_cosine_restart_matches_torch_warm_restarts():
    ours = run(lambda o: CosineRestartLR(o, periods=[4, 8, 16], restart_weights=[1, 1, 1], eta_min=0.001), 28)
    theirs = run(lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.001), 28, wrap=False)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_cosine_restart_weights_and_after_last_period():
    values = run(lambda o: CosineRestartLR(o, periods=[3, 3], restart_weights=[1, 0.5], eta_min_ratio=0.0), 9)
    expected_first = [LR * (1 + math.cos(math.pi * t / 3)) / 2 for t in range(3)]
    expected_second = [0.5 * v for v in expected_first]
    assert values[:6] == pytest.approx(expected_first + expected_second)
    assert values[6:] == pytest.approx([values[5]] * 3)  # unchanged after the last period
    with pytest.raises(ValueError, match='same length'):
        CosineRestartLR(make_opt(), periods=[3, 3], restart_weights=[1])


@pytest.mark.parametrize('kwargs', [dict(), dict(anneal_strategy='linear'), dict(three_phase=True),
                                    dict(pct_start=0.5, div_factor=10, final_div_factor=100)])
def test_one_cycle_matches_torch(kwargs):
    ours = run(lambda o: OneCycleLR(o, eta_max=1.0, total_steps=20, **kwargs), 20)
    theirs = run(lambda o: tls.OneCycleLR(o, max_lr=1.0, total_steps=20, cycle_momentum=False, **kwargs), 20,
                 wrap=False)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert max(ours) == pytest.approx(1.0, rel=1e-6)


def test_one_cycle_default_total_steps_is_window_and_overrun_raises():
    opt = make_opt()
    sched = OneCycleLR(opt, eta_max=0.5, begin=0, end=10)
    assert sched.total_steps == 10 and opt.param_groups[0]['lr'] == pytest.approx(0.5 / 25)
    for _ in range(9):
        sched.step()
    assert opt.param_groups[0]['lr'] == pytest.approx(0.5 / 25 / 1e4)
    with pytest.raises(ValueError, match='set total_steps'):
        OneCycleLR(make_opt(), eta_max=0.5)


def test_reduce_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.94, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85]
    kw = dict(factor=0.5, patience=1, threshold=0.01, cooldown=1)
    opt_t = make_opt(n_groups=2)
    torch_s = tls.ReduceLROnPlateau(opt_t, mode='min', min_lr=[0.02, 0.0], **kw)
    opt_k = make_opt(n_groups=2)
    ours = ReduceOnPlateauLR(OptimWrapper(opt_k), monitor='val/loss', rule='less', min_value=[0.02, 0.0], **kw)
    for m in metrics:
        torch_s.step(m)
        ours.step({'val/loss': torch.tensor(m)})
        assert [g['lr'] for g in opt_k.param_groups] == pytest.approx([g['lr'] for g in opt_t.param_groups])
    assert opt_k.param_groups[0]['lr'] == pytest.approx(0.02)  # clamped at min_value
    assert opt_k.param_groups[1]['lr'] == pytest.approx(0.2 * 0.5 ** 3)  # reduced three times
    assert ours.get_last_value() == [g['lr'] for g in opt_k.param_groups]


def test_reduce_on_plateau_greater_abs_and_errors():
    opt = make_opt()
    s = ReduceOnPlateauParamScheduler(opt, 'lr', monitor='acc', rule='greater', threshold=0.5,
                                      threshold_rule='abs', patience=0, factor=0.1)
    s.step({'acc': 10.0})
    s.step({'acc': 10.4})  # not better by 0.5 -> reduce (patience 0)
    assert opt.param_groups[0]['lr'] == pytest.approx(LR * 0.1)
    s.step()  # no metrics: only counts
    assert opt.param_groups[0]['lr'] == pytest.approx(LR * 0.1)
    with pytest.raises(KeyError, match="monitor 'acc'"):
        s.step({'loss': 1.0})
    with pytest.raises(ValueError, match='rule'):
        ReduceOnPlateauLR(make_opt(), rule='lower')
    assert ReduceOnPlateauLR.need_val_args is True


def test_momentum_variants_on_adam_betas():
    w = torch.nn.Parameter(torch.zeros(1))
    adam = torch.optim.Adam([w], lr=0.1, betas=(0.9, 0.999))
    s = ReduceOnPlateauMomentum(adam, monitor='loss', patience=0, factor=0.5)
    s.step({'loss': 1.0})
    s.step({'loss': 2.0})
    assert adam.param_groups[0]['betas'] == pytest.approx((0.45, 0.999))
    sgd = make_opt()
    CosineRestartMomentum(sgd, periods=[2], eta_min=0.0).step()
    assert sgd.param_groups[0]['momentum'] == pytest.approx(0.45)


def test_convert_to_iter_based():
    s = CosineRestartLR.build_iter_from_epoch(make_opt(), periods=[2, 3], restart_weights=[1, 1], eta_min=0,
                                              epoch_length=10)
    assert s.periods == [20, 30] and s.by_epoch is False
    s = OneCycleLR.build_iter_from_epoch(make_opt(), eta_max=1.0, total_steps=3, by_epoch=True, epoch_length=5)
    assert s.total_steps == 15 and s.by_epoch is False


def test_state_dict_roundtrip(tmp_path):
    opt = make_opt()
    s = ReduceOnPlateauLR(opt, monitor='loss', patience=1, factor=0.5)
    for m in (1.0, 1.0, 1.0):
        s.step({'loss': m})
    path = tmp_path / 's.pth'
    torch.save(s.state_dict(), path)
    opt2 = make_opt()
    s2 = ReduceOnPlateauLR(opt2, monitor='loss', patience=1, factor=0.5)
    s2.load_state_dict(torch.load(path, weights_only=True))
    assert (s2.best, s2.num_bad_epochs, s2.last_step) == (1.0, 0, 2)
    c = OneCycleLR(make_opt(), eta_max=1.0, total_steps=10)
    torch.save(c.state_dict(), path)
    torch.load(path, weights_only=True)


ALL = ['ConstantLR', 'LinearLR', 'StepLR', 'MultiStepLR', 'ExponentialLR', 'CosineAnnealingLR', 'CosineRestartLR',
       'PolyLR', 'OneCycleLR', 'ReduceOnPlateauLR']


@pytest.mark.parametrize('name', ALL)
def test_every_scheduler_registered_and_exported(name):
    base = name[:-2]
    variants = [name, f'{base}ParamScheduler'] + ([] if base == 'OneCycle' else [f'{base}Momentum'])
    for v in variants:
        assert getattr(ko, v) is PARAM_SCHEDULERS.get(v)


def _toy():
    """tests/test_runner/toy.py under the one module name every test uses (``test_runner.toy``): loading it
    under another name would re-register its classes (force=True) and break other tests' isinstance checks."""
    import sys
    tests_dir = str(Path(__file__).resolve().parents[1])
    if tests_dir not in sys.path:
        sys.path.append(tests_dir)
    from test_runner import toy
    return toy


def test_runner_steps_reduce_on_plateau_with_val_metrics(tmp_path):
    from kiln.runner import Runner
    toy = _toy()
    # accuracy (percent) never beats best + 1000: every validation after the first is "bad"
    sched = dict(type='ReduceOnPlateauLR', monitor='accuracy', rule='greater', factor=0.5, patience=0,
                 threshold=1000.0, threshold_rule='abs')
    runner = Runner(**toy.runner_kwargs(tmp_path, max_epochs=3, param_scheduler=sched))
    runner.train()
    assert runner.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.1 * 0.5 ** 2)
