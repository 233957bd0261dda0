"""Distributed training with real processes: one ``torchrun --nproc-per-node 2 --max-restarts 1`` job on gloo
(``tests/test_dist/dist_script.py``) compared with single-process runs of the same schedule.

The job costs ~40 s (two start-ups of two workers, because rank 1 kills itself once), so every check of a
distributed run is made on it: launch and backend fallback, elastic restart + resume, rank-0-only outputs,
sampler sharding, DDP / FSDP2 equivalence with one process at twice the batch size, FSDP2 resume, metric
collection over an odd-sized dataset, SyncBuffersHook and sync_bn on CPU.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kiln.runner import Runner
from test_runner.toy import loader_cfg, runner_kwargs

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tests' / 'test_dist' / 'dist_script.py'


def _single_process_kwargs(work_dir, **overrides):
    """The job's schedule in one process: batch 4 = 2 ranks x batch 2, same seed and sampler."""
    kw = runner_kwargs(work_dir, val=False, train_dataloader=loader_cfg('train', batch_size=4),
                       train_cfg=dict(by_epoch=False, max_iters=8),
                       optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9), accumulative_counts=2),
                       default_hooks=dict(logger=dict(type='LoggerHook', interval=2),
                                          checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False)))
    kw.update(overrides)
    return kw


@pytest.fixture(scope='module')
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist_job')
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                           '--max-restarts', '1', '--monitor-interval', '0.1', str(SCRIPT), str(out)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [json.loads((out / f'rank{r}.json').read_text()) for r in range(2)]
    return out, ranks


def _weights(path):
    return torch.load(path, weights_only=True)['state_dict']


def test_launch_restart_and_rank0_outputs(job):
    out, (r0, r1) = job
    # torchrun restarted the job once (rank 1 was SIGKILLed at iteration 7 of attempt 0) and it resumed
    assert r0['attempt'] == r1['attempt'] == 1
    assert r0['info'] == [0, 2, True, 'gloo'] and r1['info'] == [1, 2, True, 'gloo']
    assert any('using' in w and 'gloo' in w for w in r0['warnings'])  # dist_cfg says nccl, no CUDA here
    assert r0['wrapper'] == r1['wrapper'] == 'DistributedDataParallel' and r0['a_iter'] == 8
    # only rank 0 writes checkpoints and visualization data; the restarted run saved only iter_8 itself
    assert r1['saved'] == [] and r1['vis_backends'] == []
    # (iter_8 is the last iteration: written before the final validation, updated after it)
    assert set(r0['a_saved']) == {'iter_8.pth'} and r0['vis_backends'] == ['LocalVisBackend']
    log_dir = Path(r0['a_log_dir'])
    lines = [json.loads(x) for x in (log_dir / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert [x['iter'] for x in lines if 'loss' in x] == [6, 8]  # resumed at 4, logged every 2, by rank 0 only
    # every rank logs to its own file on request (cfg.log_cfg.distributed)
    stem = log_dir.name
    assert sorted(p.name for p in log_dir.glob('*.log')) == [f'{stem}.log', f'{stem}_rank1.log']
    # DefaultSampler shards one shared permutation: disjoint halves covering the 22 crops
    assert len(r0['b_indices']) == len(r1['b_indices']) == 11
    assert sorted(r0['b_indices'] + r1['b_indices']) == list(range(22))
    # diff_rank_seed: each rank draws its own random numbers, the sampler still shares one shuffle seed
    assert r0['f_rand'] != r1['f_rand']
    assert r0['f_sampler'][0] == r1['f_sampler'][0]
    assert sorted(r0['f_sampler'][1] + r1['f_sampler'][1]) == list(range(22))
    assert r0['f_conv'] == r1['f_conv']  # init_weights after wrapping: rank 0's weights were broadcast


def test_restarted_ddp_and_fsdp_match_one_process_at_double_batch(job, tmp_path):
    out, (r0, r1) = job
    ref_runner = Runner(**_single_process_kwargs(tmp_path / 'ref'))
    ref_runner.train()
    ref = _weights(tmp_path / 'ref' / 'iter_8.pth')
    restarted, full = _weights(out / 'ddp' / 'iter_8.pth'), _weights(out / 'ddp_full' / 'iter_8.pth')
    fsdp, fsdp_resumed = _weights(out / 'fsdp' / 'iter_8.pth'), _weights(out / 'fsdp_resumed' / 'iter_8.pth')
    assert set(ref) == set(restarted) == set(fsdp) == {'conv.weight', 'conv.bias', 'fc.weight', 'fc.bias'}
    halfway = _weights(tmp_path / 'ref' / 'iter_4.pth')
    assert not any(torch.equal(halfway[k], ref[k]) for k in ref)  # iterations 5..8 changed every tensor
    for k in ref:
        assert torch.equal(restarted[k], full[k]), k  # killed + restarted == uninterrupted
        torch.testing.assert_close(full[k], ref[k], rtol=1e-5, atol=1e-6)  # 2 x batch 2 == 1 x batch 4
        torch.testing.assert_close(fsdp[k], full[k], rtol=1e-5, atol=1e-6)  # FSDP2 == DDP
        assert torch.equal(fsdp_resumed[k], fsdp[k]), k  # FSDP checkpoint (iter_4) resumes exactly
    assert r0['c_wrapper'] == 'FullyShardedDataParallel' and r0['c_param_types'] == ['DTensor']
    assert r0['d_iter'] == 8
    # the FSDP checkpoint holds full, name-keyed optimizer state (momentum buffers of every parameter)
    optim = torch.load(out / 'fsdp' / 'iter_4.pth', weights_only=True)['optimizer']
    assert sorted(optim['state']) == sorted(ref)
    assert optim['state']['fc.weight']['momentum_buffer'].shape == ref['fc.weight'].shape


def test_metric_over_odd_dataset_equals_single_process(job, tmp_path):
    out, (r0, r1) = job
    assert r0['a_metrics'] == r1['a_metrics']
    acc = r0['a_metrics']['accuracy']
    assert abs(acc * 17 / 100 - round(acc * 17 / 100)) < 1e-9  # 17 samples counted once, no padding duplicate
    single = Runner(**runner_kwargs(tmp_path / 'val', val=False, load_from=str(out / 'ddp' / 'iter_8.pth'),
                                    val_dataloader=loader_cfg('val', batch_size=3, shuffle=False, max_per_class=7),
                                    val_cfg=dict(), val_evaluator=dict(type='CellAccuracy')))
    assert len(single.val_dataloader.dataset) == 17
    assert single.val() == r0['a_metrics']


def test_sync_buffers_hook_and_sync_bn(job):
    _, (r0, r1) = job
    before0, after0 = (torch.tensor(x) for x in r0['e_bn'])
    before1, after1 = (torch.tensor(x) for x in r1['e_bn'])
    assert not torch.allclose(before0, before1)  # BN statistics drift apart per rank
    assert torch.equal(after0, after1)
    torch.testing.assert_close(after0, (before0 + before1) / 2)
    assert r0['syncbn'][0] == 'BatchNorm2d' and 'ignored' in r0['syncbn'][1]  # no SyncBatchNorm on CPU
