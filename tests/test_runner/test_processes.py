"""Real processes: a 2-rank distributed (gloo) run, and a run killed mid-training then resumed."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from kiln.runner import Runner
from test_runner.toy import runner_kwargs

SCRIPT = Path(__file__).with_name('process_script.py')
REPO = Path(__file__).resolve().parents[2]


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', **extra)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_with_gloo(tmp_path):
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), 'dist', str(tmp_path / 'work'),
                               str(tmp_path / f'rank{r}.json')],
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                                       MASTER_PORT=port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2))
    assert (r0['rank'], r1['rank'], r0['world_size']) == (0, 1, 2)
    assert r0['wrapped'] == 'DistributedDataParallel'
    assert r0['samples'] == r1['samples'] == 11 and r0['iters'] == 3  # 22 crops split over 2 ranks, batch 4
    assert r0['weights'] == r1['weights']  # gradients were all-reduced
    assert r0['metrics'] == r1['metrics'] and r0['timestamp'] == r1['timestamp']
    assert sorted(p.name for p in (tmp_path / 'work').glob('*.pth')) == ['epoch_1.pth']


def test_killed_run_resumes_exactly(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), 'kill', str(tmp_path / 'killed'), str(tmp_path / 'x.json')],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # SIGKILL at iteration 9, in epoch 2
    assert not (tmp_path / 'x.json').exists()
    assert sorted(p.name for p in (tmp_path / 'killed').glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'killed' / 'last_checkpoint').read_text() == str(tmp_path / 'killed' / 'epoch_1.pth')

    kwargs = dict(max_epochs=2, model=dict(type='CellNet', dropout=0.5))
    resumed = Runner(**runner_kwargs(tmp_path / 'killed', resume=True, **kwargs))
    resumed.train()
    full = Runner(**runner_kwargs(tmp_path / 'full', **kwargs))
    full.train()
    a = torch.load(tmp_path / 'killed' / 'epoch_2.pth', weights_only=True)['state_dict']
    b = torch.load(tmp_path / 'full' / 'epoch_2.pth', weights_only=True)['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in b)
