"""A run killed with SIGKILL mid-epoch and resumed from its last iteration checkpoint ends with weights bitwise
equal to the uninterrupted run's: deterministic CPU training, dropout, random per-sample augmentation and 2
dataloader workers (per-sample seeds make batches independent of which worker loads them).

Run as a script (``python test_resume_kill.py WORK_DIR``) it is the child process that gets killed.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

if __name__ == '__main__':
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # tests/ (for test_runner.toy)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kiln.dataset import BaseDataset  # noqa: E402
from kiln.hooks import Hook  # noqa: E402
from kiln.registry import DATASETS  # noqa: E402
from kiln.runner import Runner  # noqa: E402
from test_runner.toy import load_crops, runner_kwargs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KILL_AT = 10  # 6 iterations per epoch: killed in epoch 2, after the iter_8 checkpoint


@DATASETS.register_module(force=True)
class NoisyCellCrops(BaseDataset):
    """BCCD cell crops with a random horizontal flip (NumPy) and Gaussian noise (torch) per sample."""

    def load_data_list(self):
        return [dict(index=i) for i in range(len(load_crops()[1]))]

    def prepare_data(self, idx):
        x, y = load_crops()
        img = x[idx]
        if np.random.rand() < 0.5:
            img = img.flip(-1)
        return dict(inputs=img + 0.05 * torch.randn(img.shape), data_samples=y[idx])


class KillAt(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


def kwargs(work_dir, **extra):
    loader = dict(dataset=dict(type='NoisyCellCrops'), sampler=dict(type='DefaultSampler', shuffle=True),
                  batch_size=4, num_workers=2, persistent_workers=True)
    return runner_kwargs(work_dir, max_epochs=2, val=False, model=dict(type='CellNet', dropout=0.5),
                         train_dataloader=loader, randomness=dict(seed=3, deterministic=True),
                         default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4),
                                            logger=dict(type='LoggerHook', interval=2)), **extra)


def test_killed_mid_epoch_with_workers_resumes_bitwise(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, __file__, str(tmp_path / 'killed')], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tmp_path / 'killed' / 'last_checkpoint').read_text() == str(tmp_path / 'killed' / 'iter_8.pth')
    meta = torch.load(tmp_path / 'killed' / 'iter_8.pth', weights_only=True)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 8)  # mid-epoch: 2 of the 6 batches of epoch 2 done

    resumed = Runner(**kwargs(tmp_path / 'killed', resume=True))
    resumed.train()
    full = Runner(**kwargs(tmp_path / 'full'))
    full.train()
    assert resumed.iter == full.iter == 12
    a, b = resumed.model.state_dict(), full.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    c = torch.load(tmp_path / 'full' / 'iter_4.pth', weights_only=True)['state_dict']
    assert not torch.equal(c['fc.weight'], b['fc.weight'])  # (the weights did change during training)


if __name__ == '__main__':
    torch.set_num_threads(1)
    Runner(**kwargs(sys.argv[1], custom_hooks=[KillAt()])).train()
