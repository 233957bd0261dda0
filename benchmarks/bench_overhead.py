"""Engine overhead: kiln's Runner against a plain PyTorch loop doing the same work.

Usage: ``.venv/bin/python benchmarks/bench_overhead.py [--rounds R] [--epochs E] [--profile]``.

Task (issue 10, part 2): a tiny MLP (64 -> 128 -> 10) on scikit-learn's digits (1797 8x8 images, bundled with
scikit-learn, nothing is downloaded; ``.venv/bin/python -m pip install scikit-learn``), batch 32, 1 thread, SGD.
Both sides iterate the same ``DataLoader`` (kiln's ``DefaultSampler`` with a seed, ``default_collate``,
``num_workers=0``), and format a log line with the loss and the learning rate every 10 iterations:

- plain: ``for batch in loader``: move to device, forward, cross entropy, ``zero_grad``, ``backward``,
  ``step``; every 10 iterations ``loss.item()`` into a log line (logger below its level, as kiln's is).
- kiln: ``Runner.train()`` with the default hooks (runtime info, timer, sampler seed, logger with
  ``interval=10``, param scheduler, checkpoint) and the default visualizer (``vis_data/scalars.json``);
  the CheckpointHook is told not to write files (``interval=-1, save_last=False``) because the plain loop
  saves nothing. The model and the train loop are built before the clock starts; ``train()`` is timed whole
  (optimizer wrapper, hooks' ``before_run``... included).

The two run alternately in one process for R rounds; each prints ms per iteration, the script prints the
medians and their ratio. ``--profile`` instead runs kiln under cProfile and prints the top functions.
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from kiln.model import BaseModel
from kiln.runner import Runner

BATCH, LOG_INTERVAL, LR = 32, 10, 0.05


class Digits(Dataset):
    """scikit-learn's digits: ``dict(inputs=float32 (64,) in [0, 1], data_samples=int64 label)``."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        digits = load_digits()
        self.x = torch.as_tensor(digits.data, dtype=torch.float32) / 16.0
        self.y = torch.as_tensor(digits.target, dtype=torch.int64)
        self.metainfo = dict(classes=tuple(str(i) for i in range(10)))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i], data_samples=self.y[i])


def make_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


class MLP(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_mlp()

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, data_samples))
        return logits


def loader_cfg(dataset: Dataset) -> dict:
    return dict(dataset=dataset, sampler=dict(type='DefaultSampler', shuffle=True, seed=0), batch_size=BATCH,
                num_workers=0, collate_fn=dict(type='default_collate'))


def run_plain(dataset: Dataset, epochs: int) -> tuple[float, int]:
    loader = Runner.build_dataloader(loader_cfg(dataset), seed=0)
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    logger = logging.Logger('plain', level=logging.WARNING)
    device = torch.device('cpu')
    n = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            x, y = batch['inputs'].to(device), batch['data_samples'].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += 1
            if (i + 1) % LOG_INTERVAL == 0:
                logger.info(f"Epoch(train) [{epoch + 1}][{i + 1}/{len(loader)}]  "
                            f"lr: {optimizer.param_groups[0]['lr']:.4e}  loss: {loss.item():.4f}")
    return time.perf_counter() - start, n


def build_kiln(dataset: Dataset, epochs: int, work_dir: str) -> Runner:
    runner = Runner(model=MLP(), work_dir=work_dir, train_dataloader=loader_cfg(dataset),
                    train_cfg=dict(by_epoch=True, max_epochs=epochs),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=LR)),
                    default_hooks=dict(logger=dict(type='LoggerHook', interval=LOG_INTERVAL),
                                       checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False)),
                    randomness=dict(seed=0), log_level='WARNING')
    runner.model  # noqa: B018  (built before the clock starts)
    runner.train_loop  # noqa: B018
    return runner


def run_kiln(dataset: Dataset, epochs: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_kiln(dataset, epochs, work_dir)
        start = time.perf_counter()
        runner.train()
        elapsed = time.perf_counter() - start
        n = runner.iter
        runner.close()
    return elapsed, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--profile', action='store_true', help='profile the kiln side with cProfile')
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = Digits()
    if args.profile:
        run_kiln(dataset, 1)  # warm-up: first-use imports
        with tempfile.TemporaryDirectory() as work_dir:
            runner = build_kiln(dataset, args.epochs, work_dir)
            profiler = cProfile.Profile()
            profiler.runcall(runner.train)
            runner.close()
        pstats.Stats(profiler).sort_stats('tottime').print_stats(40)
        return
    run_plain(dataset, 1), run_kiln(dataset, 1)  # warm-up
    plain, kiln = [], []
    for r in range(args.rounds):
        for name, fn, out in (('plain', run_plain, plain), ('kiln', run_kiln, kiln)):
            elapsed, n = fn(dataset, args.epochs)
            out.append(elapsed / n * 1e3)
        print(f'round {r + 1}: plain {plain[-1]:.3f} ms/iter  kiln {kiln[-1]:.3f} ms/iter  '
              f'ratio {kiln[-1] / plain[-1]:.3f}')
    p, k = statistics.median(plain), statistics.median(kiln)
    print(f'digits MLP, batch {BATCH}, {torch.get_num_threads()} thread, {n} iterations per run, '
          f'{args.rounds} rounds: plain PyTorch {p:.3f} ms/iter, kiln Runner {k:.3f} ms/iter (medians), '
          f'ratio {k / p:.2f}')


if __name__ == '__main__':
    main()
