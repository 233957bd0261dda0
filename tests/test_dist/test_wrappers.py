"""kiln.model.wrappers in one process: registry names, SyncBN conversion, wrapping rules, init_dist options,
and the FSDP2 wrapper on a 1-rank gloo group (train_step, accumulation, full state dicts)."""
import warnings

import pytest
import torch
import torch.distributed as torch_dist
from torch import nn

from kiln import dist
from kiln.model.wrappers import (DistributedDataParallel, FullyShardedDataParallel, convert_sync_batchnorm,
                                 is_model_wrapper, needs_all_ranks_to_save, revert_sync_batchnorm, unwrap_model,
                                 wrap_model)
from kiln.optim import OptimWrapper
from kiln.registry import MODEL_WRAPPERS
from test_runner.toy import CellNet, load_crops


def test_registered_names_and_compat_import():
    import kiln.runner.ddp
    for name in ('KilnDistributedDataParallel', 'MMDistributedDataParallel'):
        assert MODEL_WRAPPERS.get(name) is DistributedDataParallel
    for name in ('FSDP', 'MMFullyShardedDataParallel', 'KilnFullyShardedDataParallel'):
        assert MODEL_WRAPPERS.get(name) is FullyShardedDataParallel
    assert kiln.runner.ddp.DistributedDataParallel is DistributedDataParallel


def test_wrap_rules_without_process_group():
    model = CellNet()
    assert wrap_model(model, distributed=False, wrapper_cfg=dict(type='FSDP'), sync_bn='torch') is model
    dp = nn.DataParallel(model)
    assert is_model_wrapper(dp) and unwrap_model(dp) is model and not is_model_wrapper(model)
    assert not needs_all_ranks_to_save(dp)
    with pytest.raises(RuntimeError, match='process group'):
        FullyShardedDataParallel(model)


def test_sync_batchnorm_round_trip():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    model[1].running_mean.fill_(0.5)
    synced = convert_sync_batchnorm(model)
    assert isinstance(synced[1], nn.SyncBatchNorm) and isinstance(synced[2][0], nn.SyncBatchNorm)
    assert torch.equal(synced[1].running_mean, torch.full((4,), 0.5))
    plain = revert_sync_batchnorm(synced).eval()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    x = torch.randn(2, 3, 6, 6)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ref.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith('2.')})
    torch.testing.assert_close(plain[:2](x), ref.eval()(x))
    assert plain[2][0](torch.randn(5, 4)).shape == (5, 4)  # the reverted 1d norm still takes (N, C)
    with pytest.raises(ValueError, match='sync_bn'):
        convert_sync_batchnorm(model, 'apex')


def test_rank_log_files_option():
    assert dist.rank_log_files('DEBUG') and dist.rank_log_files('INFO', dict(log_cfg=dict(distributed=True)))
    assert not dist.rank_log_files('INFO', dict()) and not dist.rank_log_files('WARNING', None)


def test_init_dist_backend_fallback_and_elastic_prefix(monkeypatch):
    calls = []
    monkeypatch.setattr(torch_dist, 'init_process_group', lambda **kw: calls.append(kw))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='29999').items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('TORCHELASTIC_RESTART_COUNT', raising=False)
    with pytest.warns(UserWarning, match="'nccl' needs CUDA"):
        dist.init_dist('pytorch', backend='nccl', timeout=30)
    assert calls[-1]['backend'] == 'gloo' and calls[-1]['init_method'] == 'env://'
    assert calls[-1]['timeout'].total_seconds() == 30
    dist.init_dist('pytorch')  # default backend without CUDA
    assert calls[-1]['backend'] == 'gloo'

    store = torch_dist.HashStore()
    monkeypatch.setattr(torch_dist, 'rendezvous', lambda url, **kw: iter([(store, 0, 1)]))
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '3')
    dist.init_dist('pytorch', backend='gloo')
    prefixed = calls[-1]['store']
    assert isinstance(prefixed, torch_dist.PrefixStore) and (calls[-1]['rank'], calls[-1]['world_size']) == (0, 1)
    prefixed.set('k', 'v')
    assert store.get('kiln/attempt_3/k') == b'v'  # a restarted attempt never reads the dead workers' keys


class _Spy:
    def __init__(self, module):
        self.flags = []
        self._set = module.set_requires_gradient_sync
        module.set_requires_gradient_sync = self

    def __call__(self, flag, **kwargs):
        self.flags.append(flag)
        self._set(flag, **kwargs)


@pytest.fixture
def one_rank_group():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch_dist.init_process_group('gloo', store=torch_dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        torch_dist.destroy_process_group()


def test_fsdp_wrapper_on_one_rank(one_rank_group):
    x, y = load_crops('train')
    batches = [dict(inputs=list(x[i:i + 4]), data_samples=list(y[i:i + 4])) for i in range(0, 16, 4)]
    torch.manual_seed(0)
    plain = CellNet()
    torch.manual_seed(0)
    wrapped = FullyShardedDataParallel(CellNet(), shard_modules=['Linear'])
    assert is_model_wrapper(wrapped) and needs_all_ranks_to_save(wrapped)
    assert {type(p).__name__ for p in wrapped.parameters()} == {'DTensor'}
    opt_a = OptimWrapper(torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9), accumulative_counts=2)
    opt_b = wrapped.bind_optim_wrapper(OptimWrapper(torch.optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9),
                                                    accumulative_counts=2))
    for opt in (opt_a, opt_b):
        opt.initialize_count_status(plain, 0, len(batches))
    spy = _Spy(wrapped.module)
    for batch in batches:
        log_a = plain.train_step(batch, opt_a)
        log_b = wrapped.train_step(batch, opt_b)
        torch.testing.assert_close(log_a['loss'], log_b['loss'])
    assert spy.flags == [False, True, False, True]  # no gradient sync inside an accumulation window
    state = wrapped.state_dict()
    assert set(state) == set(plain.state_dict()) and all(v.device.type == 'cpu' for v in state.values())
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(state[k], v)
    optim_state = opt_b.state_dict()
    assert sorted(optim_state['state']) == sorted(state)  # full state keyed by parameter name
    # load back into a fresh sharded model and optimizer
    fresh = FullyShardedDataParallel(CellNet(width=8))
    fresh_opt = fresh.bind_optim_wrapper(OptimWrapper(torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)))
    missing = fresh.load_state_dict(state)
    assert list(missing.missing_keys) == [] and list(missing.unexpected_keys) == []
    fresh_opt.load_state_dict(optim_state)
    torch.testing.assert_close(fresh.state_dict()['fc.weight'], state['fc.weight'])
    torch.testing.assert_close(fresh_opt.state_dict()['state']['fc.weight']['momentum_buffer'],
                               optim_state['state']['fc.weight']['momentum_buffer'])
    preds = fresh.val_step(batches[0])
    assert len(preds) == 4 and {'pred_label', 'gt_label'} <= set(preds[0])
