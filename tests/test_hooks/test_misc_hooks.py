"""EmptyCacheHook, SyncBuffersHook, ProfilerHook (the MMEngine docs' config examples, run on the toy task)."""
import json
from pathlib import Path

import pytest
import torch

from kiln.hooks import EmptyCacheHook, ProfilerHook, SyncBuffersHook
from kiln.hooks.sync_buffers_hook import all_reduce_buffers
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


def _hook(runner, cls):
    return next(h for h in runner.hooks if isinstance(h, cls))


def test_empty_cache_hook_points(tmp_path):
    # docs example: release after each epoch; plus after every iteration
    custom_hooks = [dict(type='EmptyCacheHook', after_epoch=True),
                    dict(type='EmptyCacheHook', before_epoch=True, after_epoch=False, after_iter=True)]
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, custom_hooks=custom_hooks))
    runner.train()
    epoch_hook, iter_hook = [h for h in runner.hooks if isinstance(h, EmptyCacheHook)]
    n_train, n_val = len(runner.train_dataloader), len(runner.val_dataloader)
    assert epoch_hook.calls == 2 * 2  # 2 train + 2 val epochs
    assert iter_hook.calls == 2 * 2 + 2 * (n_train + n_val)


def test_sync_buffers_hook_is_a_no_op_when_not_distributed(tmp_path):
    bn = torch.nn.BatchNorm1d(3)
    bn.running_mean.fill_(2.0)
    assert all_reduce_buffers(bn) == 0 and torch.all(bn.running_mean == 2.0)
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, custom_hooks=[dict(type='SyncBuffersHook')]))
    runner.train()
    assert _hook(runner, SyncBuffersHook)._synced_after_train_epoch


def test_profiler_hook_writes_a_chrome_trace_in_the_log_dir(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, val=False, default_hooks=dict(checkpoint=None),
                                    custom_hooks=[dict(type='ProfilerHook', by_epoch=False, profile_times=2)]))
    runner.train()
    hook = _hook(runner, ProfilerHook)
    assert hook.trace_path == str(Path(runner.log_dir) / 'profiler_trace.json')
    events = json.loads(Path(hook.trace_path).read_text())['traceEvents']
    names = {e.get('name', '') for e in events}
    assert any('conv2d' in n for n in names) and any('linear' in n or 'addmm' in n for n in names)
    assert hook.profiler is None  # stopped after 2 iterations, training went on
    assert runner.iter == 2 * len(runner.train_dataloader)


def test_profiler_hook_log_trace_and_errors(tmp_path):
    seen = []
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False, default_hooks=dict(checkpoint=None),
                                    custom_hooks=[dict(type='ProfilerHook', on_trace_ready=seen.append,
                                                       json_trace_path=str(tmp_path / 't.json'))]))
    runner.train()
    assert len(seen) == 1 and (tmp_path / 't.json').is_file()
    with pytest.raises(ValueError, match='profile_times'):
        ProfilerHook(profile_times=0)
    with pytest.raises(ValueError, match="'log_trace' or 'tb_trace'"):
        ProfilerHook(on_trace_ready=dict(type='print'))


def test_buffers_and_val_loss_are_reduced_over_two_gloo_ranks(tmp_path):
    """Two forked ranks (torch is already imported: no start-up cost) in a gloo group."""
    import multiprocessing
    import socket
    from test_hooks.dist_ranks import run_rank
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context('fork')
    procs = [ctx.Process(target=run_rank, args=(r, 2, port, str(tmp_path / f'{r}.json'))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.is_alive():
            p.kill()
        assert p.exitcode == 0
    for r in range(2):
        result = json.loads((tmp_path / f'{r}.json').read_text())
        assert result['reduced'] == 2 and result['mean'] == [2.0, 2.0]  # running_mean and running_var
        assert result['tracked'] == r + 1
        assert result['loss'] == pytest.approx(2.0)
