"""Exact resume for any dataset: a run SIGKILLed at a random moment and resumed with ``resume=True`` ends with
weights bitwise equal to the uninterrupted run's.

The set-up is MMEngine's "15 minutes" style: a plain ``torch.utils.data.Dataset`` (not a kiln ``BaseDataset``)
whose ``__getitem__`` draws random noise with NumPy and torch, a model with dropout, ``num_workers=2``,
``DefaultSampler(shuffle=True)``, ``CheckpointHook(by_epoch=False, interval=7)`` and
``randomness=dict(seed=..., deterministic=True)``; also with a kiln ``BaseDataset`` and with
``persistent_workers`` on and off. The kill moment is drawn at random (a real SIGKILL of a child process), so
it lands before the first checkpoint, between checkpoints, inside an epoch, while workers start, or after the
end. Per-sample seeding at fetch time (``kiln.dataset.SeededDataLoader``) and the RNG states in the checkpoint
make the outcome independent of where it lands.

Run as a script (``python test_resume_random_kill.py WORK_DIR KIND PERSISTENT``) it is the child that gets
killed.
"""
import os
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __name__ == '__main__':
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # tests/ (for test_runner.toy)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from kiln.dataset import BaseDataset  # noqa: E402
from kiln.hooks import Hook  # noqa: E402
from kiln.registry import DATASETS  # noqa: E402
from kiln.runner import Runner  # noqa: E402
from test_runner.toy import load_crops, runner_kwargs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRIALS = 3  # kills per variant (the killed children run side by side)
MAX_EPOCHS = 3  # 6 iterations per epoch: 18 iterations, checkpoints at 7 and 14 (both mid-epoch)


def _noisy(i: int) -> dict:
    x, y = load_crops()
    img = x[i]
    if np.random.rand() < 0.5:
        img = img.flip(-1)
    return dict(inputs=img + 0.05 * torch.randn(img.shape), data_samples=y[i])


@DATASETS.register_module(force=True)
class PlainNoisyCrops(Dataset):
    """A plain torch Dataset: random flip (NumPy) and Gaussian noise (torch) drawn in ``__getitem__``."""

    def __len__(self):
        return len(load_crops()[1])

    def __getitem__(self, i):
        return _noisy(i)


@DATASETS.register_module(force=True)
class KilnNoisyCrops(BaseDataset):
    """The same samples from a kiln BaseDataset (augmentation in ``prepare_data``)."""

    def load_data_list(self):
        return [dict(index=i) for i in range(len(load_crops()[1]))]

    def prepare_data(self, idx):
        return _noisy(idx)


class Started(Hook):
    """Tells the parent (one line on stdout) that training has begun, so the random kill lands in training."""

    def before_train(self, runner):
        print('started', flush=True)


def kwargs(work_dir, kind: str, persistent: bool, **extra) -> dict:
    loader = dict(dataset=dict(type=kind), sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4,
                  num_workers=2, persistent_workers=persistent)
    return runner_kwargs(work_dir, max_epochs=MAX_EPOCHS, val=False, model=dict(type='CellNet', dropout=0.5),
                         train_dataloader=loader, randomness=dict(seed=11, deterministic=True),
                         # save_last=False: a kill after the end resumes from iter_14, mid-epoch, too. (Resuming
                         # from a checkpoint written at the end of an epoch is the loops' own regression test.)
                         default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=7,
                                                            save_last=False),
                                            logger=dict(type='LoggerHook', interval=5)), **extra)


def _kill_at_random(work_dir: Path, kind: str, persistent: bool, delay: float) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, __file__, str(work_dir), kind, str(int(persistent))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until training starts (or the child dies)
    assert line.strip() == 'started', proc.stderr.read()
    threading.Event().wait(delay)  # the random moment
    proc.send_signal(signal.SIGKILL)  # (a no-op if the run has already finished)
    proc.communicate(timeout=60)
    return proc.returncode


@pytest.mark.parametrize('kind', ['PlainNoisyCrops', 'KilnNoisyCrops'])
@pytest.mark.parametrize('persistent', [True, False], ids=['persistent', 'transient'])
def test_sigkill_at_random_moments_then_resume_is_bitwise_exact(tmp_path, kind, persistent):
    full = Runner(**kwargs(tmp_path / 'full', kind, persistent))
    full.train()
    expected = {k: v.clone() for k, v in full.model.state_dict().items()}
    full.close()
    first = torch.load(tmp_path / 'full' / 'iter_7.pth', weights_only=True)['state_dict']
    assert not torch.equal(first['fc.weight'], expected['fc.weight'])  # (the weights do change in training)

    rng = random.Random(f'{kind}-{persistent}')
    delays = [rng.uniform(0.0, 1.5) for _ in range(TRIALS)]
    works = [tmp_path / f'killed{trial}' for trial in range(TRIALS)]
    with ThreadPoolExecutor(TRIALS) as pool:
        codes = list(pool.map(lambda a: _kill_at_random(a[0], kind, persistent, a[1]), zip(works, delays)))
    outcomes = []
    for trial, work in enumerate(works):
        last = work / 'last_checkpoint'
        outcomes.append((codes[trial], Path(last.read_text().strip()).name if last.exists() else None))
        resumed = Runner(**kwargs(work, kind, persistent, resume=True))
        resumed.train()
        assert resumed.iter == full.iter == MAX_EPOCHS * 6, outcomes
        got = resumed.model.state_dict()
        resumed.close()
        diff = max((got[k].double() - expected[k].double()).abs().max().item() for k in expected)
        assert all(torch.equal(got[k], expected[k]) for k in expected), (trial, outcomes[-1], diff)
    print(f'{kind} persistent={persistent}: (exit code, resumed from) per kill: {outcomes}')


if __name__ == '__main__':
    torch.set_num_threads(1)
    work_dir, kind, persistent = sys.argv[1], sys.argv[2], bool(int(sys.argv[3]))
    Runner(**kwargs(work_dir, kind, persistent, custom_hooks=[Started()])).train()
