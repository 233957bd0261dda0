"""Time resuming a run at an early and at a late iteration of a long epoch.

Usage: ``.venv/bin/python benchmarks/bench_resume.py [--samples N] [--load-ms MS] [--repeats R]``.
A tiny model trains on a synthetic dataset of N samples whose ``__getitem__`` costs MS milliseconds (a stand-in
for JPEG decoding). One real iteration checkpoint is written, then copied with its position moved to iteration
10 and to iteration ``N // batch - 10`` of the first epoch. For each, the time from ``runner.train()`` (with
``resume=<file>``) to the end of the first resumed iteration is measured, median over R runs. Because the
sampler skips indices instead of loading and dropping batches, both should take the same time; loading the
skipped batches would cost about ``iter * batch * MS`` ms.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from kiln.hooks import Hook
from kiln.model import BaseModel
from kiln.runner import Runner


class Net(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(list(inputs))
        y = torch.stack(list(data_samples))
        return dict(loss=nn.functional.cross_entropy(self.fc(x), y))


class SlowData(torch.utils.data.Dataset):
    def __init__(self, n: int, load_ms: float) -> None:
        self.n, self.load_s = n, load_ms / 1000

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        end = time.perf_counter() + self.load_s
        while time.perf_counter() < end:  # busy "decoding"
            pass
        return dict(inputs=torch.full((8,), float(i % 7)), data_samples=torch.tensor(i % 2))


class StopAfterFirst(Hook):
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.done_at = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.done_at is None:
            self.done_at = time.perf_counter()
        runner.train_loop.stop_training = True


def _runner(work_dir: Path, args, resume=False, hooks=()) -> Runner:
    return Runner(model=Net(), work_dir=str(work_dir), log_level='ERROR', resume=resume,
                  train_dataloader=dict(dataset=SlowData(args.samples, args.load_ms), batch_size=args.batch,
                                        sampler=dict(type='DefaultSampler', shuffle=True), num_workers=0),
                  train_cfg=dict(by_epoch=True, max_epochs=1),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)), randomness=dict(seed=0),
                  default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1),
                                     logger=None), custom_hooks=list(hooks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=20000)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--load-ms', type=float, default=2.0)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix='bench_resume_'))
    _runner(root / 'src', args, hooks=[StopAfterFirst()]).train()  # writes iter_1.pth
    base = torch.load(root / 'src' / 'iter_1.pth', weights_only=True)
    n_iters = args.samples // args.batch
    for at in (10, n_iters - 10):
        base['meta']['iter'] = at
        path = root / f'at_{at}.pth'
        torch.save(base, path)
        times = []
        for r in range(args.repeats):
            hook = StopAfterFirst()
            runner = _runner(root / f'run_{at}_{r}', args, resume=str(path), hooks=[hook])
            start = time.perf_counter()
            runner.train()
            assert runner.iter == at + 1, runner.iter
            times.append(hook.done_at - start)
            runner.close()
        skipped_cost = at * args.batch * args.load_ms / 1000
        print(f'resume at iteration {at:6d} of {n_iters}: first iteration done after '
              f'{1000 * statistics.median(times):7.1f} ms (median of {args.repeats}); loading the skipped '
              f'batches instead would cost ~{skipped_cost:.1f} s')


if __name__ == '__main__':
    main()
