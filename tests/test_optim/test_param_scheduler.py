import math

import pytest
import torch
from torch.optim import lr_scheduler as tls

from kiln.optim import (INF, ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, LinearMomentum, MultiStepLR,
                        OptimWrapper, PolyLR, StepLR, StepMomentum, _ParamScheduler)
from kiln.registry import PARAM_SCHEDULERS

LR = 0.1
N = 12


def make_opt(lr=LR, **kw):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9, **kw)


def run_ours(build, steps=N):
    opt = make_opt()
    sched = build(OptimWrapper(opt))
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return values


def run_torch(build, steps=N):
    opt = make_opt()
    sched = build(opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return values


@pytest.mark.parametrize('ours, theirs', [
    (lambda o: LinearLR(o, start_factor=0.1, begin=0, end=5),
     lambda o: tls.LinearLR(o, start_factor=0.1, total_iters=4)),
    (lambda o: LinearLR(o, start_factor=0.25, end_factor=0.5, end=7),
     lambda o: tls.LinearLR(o, start_factor=0.25, end_factor=0.5, total_iters=6)),
    (lambda o: ConstantLR(o, factor=0.5, end=4), lambda o: tls.ConstantLR(o, factor=0.5, total_iters=3)),
    (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda o: tls.StepLR(o, step_size=3, gamma=0.5)),
    (lambda o: MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1),
     lambda o: tls.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1)),
    (lambda o: ExponentialLR(o, gamma=0.8), lambda o: tls.ExponentialLR(o, gamma=0.8)),
    (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=0.01),
     lambda o: tls.CosineAnnealingLR(o, T_max=5, eta_min=0.01)),
    (lambda o: CosineAnnealingLR(o, begin=0, end=N), lambda o: tls.CosineAnnealingLR(o, T_max=N)),
    (lambda o: PolyLR(o, power=2.0, end=8), lambda o: tls.PolynomialLR(o, total_iters=7, power=2.0)),
])
def test_matches_torch(ours, theirs):
    assert run_ours(ours) == pytest.approx(run_torch(theirs), rel=1e-9, abs=1e-12)


def test_window_begin_end_and_chaining():
    # warm-up over steps [0, 3), then x0.1 at window step 2 of a MultiStepLR starting at step 4
    opt = make_opt()
    warm = LinearLR(opt, start_factor=0.5, begin=0, end=3)
    decay = MultiStepLR(opt, milestones=[2], gamma=0.1, begin=4, end=10)
    values = []
    for _ in range(8):
        values.append(opt.param_groups[0]['lr'])
        warm.step()
        decay.step()
    assert values == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01])
    assert warm.get_last_value() == pytest.approx([0.01])


def test_cosine_eta_min_ratio_and_closed_form():
    vals = run_ours(lambda o: CosineAnnealingLR(o, T_max=6, eta_min_ratio=0.1), steps=7)
    lo = LR * 0.1
    assert vals == pytest.approx([lo + (LR - lo) * (1 + math.cos(math.pi * t / 6)) / 2 for t in range(7)])


def test_build_iter_from_epoch_converts_units():
    opt = make_opt()
    s = MultiStepLR.build_iter_from_epoch(optimizer=opt, milestones=[1, 2], gamma=0.5, begin=0, end=3,
                                          epoch_length=4)
    assert s.by_epoch is False and s.end == 12 and s.milestones == {4: 1, 8: 1}
    values = []
    for _ in range(10):
        values.append(opt.param_groups[0]['lr'])
        s.step()
    assert values == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 2)
    st = StepLR.build_iter_from_epoch(make_opt(), step_size=2, epoch_length=3)
    assert st.step_size == 6 and st.end == INF
    c = CosineAnnealingLR.build_iter_from_epoch(make_opt(), T_max=2, begin=1, end=3, epoch_length=5)
    assert (c.T_max, c.begin, c.end) == (10, 5, 15)
    with pytest.raises(ValueError, match='epoch_length'):
        LinearLR.build_iter_from_epoch(make_opt(), epoch_length=0)
    with pytest.raises(ValueError, match='by_epoch=True'):
        LinearLR.build_iter_from_epoch(make_opt(), by_epoch=False, epoch_length=3)


def test_registry_build_with_default_args():
    ow = OptimWrapper(make_opt())
    s = PARAM_SCHEDULERS.build(dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
                               default_args=dict(optimizer=ow))
    assert isinstance(s, _ParamScheduler) and s.by_epoch is False
    assert ow.get_lr()['lr'] == pytest.approx([0.01])


def test_state_dict_roundtrip_weights_only(tmp_path):
    opt = make_opt()
    s = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    for _ in range(3):
        s.step()
    torch.save(s.state_dict(), tmp_path / 's.pth')
    state = torch.load(tmp_path / 's.pth', weights_only=True)
    opt2 = make_opt()
    opt2.param_groups[0]['initial_lr'] = LR
    opt2.param_groups[0]['lr'] = opt.param_groups[0]['lr']
    s2 = MultiStepLR(opt2, milestones=[99], last_step=0)
    s2.load_state_dict(state)
    for _ in range(3):
        s.step()
        s2.step()
        assert opt2.param_groups[0]['lr'] == opt.param_groups[0]['lr']
    assert s2.milestones == {2: 1, 4: 1}


def test_momentum_schedulers_sgd_and_adam_betas():
    opt = make_opt()
    s = StepMomentum(opt, step_size=1, gamma=0.5)
    s.step()
    assert opt.param_groups[0]['momentum'] == pytest.approx(0.45)
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1, betas=(0.8, 0.99))
    lm = LinearMomentum(OptimWrapper(adam), start_factor=0.5, end=3)
    assert adam.param_groups[0]['betas'] == pytest.approx((0.4, 0.99))
    lm.step()
    lm.step()
    assert adam.param_groups[0]['betas'] == pytest.approx((0.8, 0.99))
    with pytest.raises(ValueError, match="neither 'momentum' nor 'betas'"):
        StepMomentum(torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))]), step_size=1)


def test_errors():
    with pytest.raises(ValueError, match='end must be larger'):
        LinearLR(make_opt(), begin=3, end=3)
    with pytest.raises(TypeError, match='optimizer'):
        LinearLR(object())
    with pytest.raises(KeyError, match='initial_lr'):
        LinearLR(make_opt(), last_step=3)
