"""Tracker backends under DDP with real processes: 2 gloo ranks train one Runner configured with TensorBoard and
DVCLive; only rank 0 writes the tracker runs (rank 1 builds no backend and writes nothing).

DVCLive (plain files) rather than MLflow here: creating an MLflow SQLite store costs ~12 s of schema
migrations, which test_tracker_sessions.py already pays for the single-process MLflow checks."""
import json
import os
import socket

import torch
import torch.multiprocessing as mp

from kiln.runner import Runner
from test_runner.toy import loader_cfg, runner_kwargs


def _worker(rank, work, port):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2', LOCAL_WORLD_SIZE='2',
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    vis = dict(type='Visualizer', vis_backends=[dict(type='TensorboardVisBackend'), dict(type='DVCLiveVisBackend')])
    runner = Runner(**runner_kwargs(work, val=False, launcher='pytorch', visualizer=vis,
                                    env_cfg=dict(dist_cfg=dict(backend='gloo')),
                                    train_dataloader=loader_cfg('train', batch_size=2),
                                    train_cfg=dict(by_epoch=False, max_iters=4),
                                    default_hooks=dict(logger=dict(type='LoggerHook', interval=1), checkpoint=None)))
    backends = list(runner.visualizer.vis_backends)
    runner.train()
    result = dict(rank=runner.rank, world_size=runner.world_size, backends=backends, log_dir=runner.log_dir)
    runner.close()
    with open(os.path.join(work, f'rank{rank}.json'), 'w') as f:
        json.dump(result, f)


def test_only_rank0_writes_the_tracker_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive runs `dvc init` in a git repository around the cwd (see the backend)
    import dvclive  # noqa: F401  (imported before the fork: the workers need not import it again)
    from dvclive.utils import parse_metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    work = tmp_path / 'work'
    work.mkdir()
    # fork: the workers start with torch and kiln already imported (a spawn re-imports them: ~10 s each)
    mp.start_processes(_worker, args=(str(work), port), nprocs=2, join=True, start_method='fork')
    r0, r1 = (json.loads((work / f'rank{r}.json').read_text()) for r in range(2))
    assert (r0['rank'], r0['world_size'], r1['rank']) == (0, 2, 1)
    assert r0['backends'] == ['TensorboardVisBackend', 'DVCLiveVisBackend'] and r1['backends'] == []

    events = list(work.rglob('events.out.tfevents.*'))
    assert len(events) == 1 and str(events[0]).startswith(r0['log_dir'])  # one TensorBoard run: rank 0's
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars('loss')] == [1, 2, 3, 4]
    lives = [p.parent for p in work.rglob('metrics.json') if p.parent.name == 'dvclive']
    assert [str(p) for p in lives] == [os.path.join(r0['log_dir'], 'vis_data', 'dvclive')]

    class _Live:  # parse_metrics reads the plots and summary of a Live object's directory
        plots_dir = str(lives[0] / 'plots')
        metrics_file = str(lives[0] / 'metrics.json')

    series, _ = parse_metrics(_Live())
    loss = next(v for k, v in series.items() if k.endswith('loss.tsv'))
    assert [int(r['step']) for r in loss] == [1, 2, 3, 4]
    assert not (tmp_path / '.dvc').exists() and not (tmp_path / 'dvc.yaml').exists()
