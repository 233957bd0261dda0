import pytest
import torch
from torch import nn

from kiln.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    return model, x, y


def grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_accumulation_equals_large_batch_gradient():
    model, x, y = model_and_data()
    big = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    big.load_state_dict(model.state_dict())
    ((big(x) - y) ** 2).mean().backward()
    expected = grads(big)

    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), accumulative_counts=4)
    steps = []
    ow.step = lambda **kw: steps.append(ow._inner_count)  # capture gradients before zero_grad
    ow.zero_grad = lambda **kw: None
    for i in range(4):
        xb, yb = x[2 * i:2 * i + 2], y[2 * i:2 * i + 2]
        with ow.optim_context(model):
            loss = ((model(xb) - yb) ** 2).mean()
        ow.update_params(loss)
    assert steps == [4]
    for g, e in zip(grads(model), expected):
        torch.testing.assert_close(g, e)


def test_last_short_window_uses_its_real_length():
    model, x, y = model_and_data()
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    ref.load_state_dict(model.state_dict())
    # 5 iterations with accumulative_counts=3: windows of 3 then 2 batches
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    ow.initialize_count_status(model, 0, 5)
    updates = []
    for i in range(5):
        ow.update_params(((model(x[i:i + 1]) - y[i:i + 1]) ** 2).mean())
        updates.append(ow.should_update())
    assert updates == [False, False, True, False, True]
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for lo, hi in ((0, 3), (3, 5)):
        opt.zero_grad()
        ((ref(x[lo:hi]) - y[lo:hi]) ** 2).mean().backward()
        opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)


def test_optim_context_uses_no_sync_inside_a_window():
    calls = []

    class FakeDDP(nn.Module):
        def no_sync(self):
            from contextlib import contextmanager

            @contextmanager
            def cm():
                calls.append('no_sync')
                yield
            return cm()

    ow = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), accumulative_counts=2)
    m = FakeDDP()
    with ow.optim_context(m):
        pass
    assert calls == ['no_sync']
    ow._inner_count = 1
    with ow.optim_context(m):
        pass
    assert calls == ['no_sync']


def test_clip_grad_norm_and_value():
    p = nn.Parameter(torch.zeros(2))
    ow = OptimWrapper(torch.optim.SGD([p], lr=1.0), clip_grad=dict(max_norm=1.0))
    ow.update_params((p * torch.tensor([3.0, 4.0])).sum())
    assert isinstance(ow.last_grad_norm, torch.Tensor)
    torch.testing.assert_close(ow.last_grad_norm, torch.tensor(5.0))
    torch.testing.assert_close(p.detach(), torch.tensor([-0.6, -0.8]), rtol=1e-5, atol=1e-5)
    q = nn.Parameter(torch.zeros(2))
    ow = OptimWrapper(torch.optim.SGD([q], lr=1.0), clip_grad=dict(type='value', clip_value=0.5))
    ow.update_params((q * torch.tensor([3.0, -0.2])).sum())
    torch.testing.assert_close(q.detach(), torch.tensor([-0.5, 0.2]))
    with pytest.raises(ValueError, match="'norm' or 'value'"):
        OptimWrapper(torch.optim.SGD([q], lr=1.0), clip_grad=dict(type='other'))


def test_lr_momentum_and_state_dict_weights_only(tmp_path):
    p = nn.Parameter(torch.ones(2))
    sgd = OptimWrapper(torch.optim.SGD([p], lr=0.1, momentum=0.9))
    assert sgd.get_lr() == {'lr': [0.1]} and sgd.get_momentum() == {'momentum': [0.9]}
    adam = OptimWrapper(torch.optim.Adam([p], lr=0.01, betas=(0.85, 0.99)))
    assert adam.get_momentum() == {'momentum': [0.85]}
    sgd.update_params(p.sum())
    torch.save(sgd.state_dict(), tmp_path / 'o.pth')
    state = torch.load(tmp_path / 'o.pth', weights_only=True)
    other = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.5, momentum=0.9))
    other.load_state_dict(state)
    assert other.get_lr() == {'lr': [0.1]}
    torch.testing.assert_close(other.optimizer.state[other.param_groups[0]['params'][0]]['momentum_buffer'],
                               torch.ones(2))


def test_amp_bfloat16_on_cpu_keeps_fp32_master_weights(tmp_path):
    model, x, y = model_and_data()
    ow = AmpOptimWrapper(dtype='bfloat16', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert ow.loss_scaler is None  # no scaler for bf16 / CPU
    before = [p.detach().clone() for p in model.parameters()]
    with ow.optim_context(model):
        out = model(x)
        assert out.dtype == torch.bfloat16
        loss = ((out.float() - y) ** 2).mean()
    ow.update_params(loss)
    for p, b in zip(model.parameters(), before):
        assert p.dtype == torch.float32
        assert not torch.equal(p.detach(), b)
    with ow.optim_context(model):
        pass
    assert model(x).dtype == torch.float32  # autocast left after the context
    torch.save(ow.state_dict(), tmp_path / 'amp.pth')
    assert 'loss_scaler' not in torch.load(tmp_path / 'amp.pth', weights_only=True)
    with pytest.raises(ValueError, match='dtype'):
        AmpOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_optim_wrapper_dict():
    a = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
    b = OptimWrapper(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.2))
    d = OptimWrapperDict(gen=a, disc=b)
    assert d['gen'] is a and 'disc' in d and len(d) == 2
    assert d.get_lr() == {'gen.lr': [0.1], 'disc.lr': [0.2]}
    assert set(d.state_dict()) == {'gen', 'disc'}
    with pytest.raises(NotImplementedError, match='one wrapper'):
        d.update_params(torch.zeros(1))
    with pytest.raises(TypeError, match="'x' must be an OptimWrapper"):
        OptimWrapperDict(x=3)
