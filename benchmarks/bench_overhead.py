"""Engine overhead: kiln's Runner against a plain PyTorch loop doing the same work.

Usage: ``.venv/bin/python benchmarks/bench_overhead.py [--rounds R] [--epochs E] [--profile]``.

Task (issue 10, part 2): a tiny MLP (64 -> 128 -> 10) on scikit-learn's digits (1797 8x8 images, bundled with
scikit-learn, nothing is downloaded; ``.venv/bin/python -m pip install scikit-learn``), batch 32, 1 thread, SGD.
Both sides iterate the same kind of ``torch.utils.data.DataLoader`` (``shuffle=True`` with a seeded generator,
``default_collate``, ``num_workers=0``), and format a log line with the loss and the learning rate every 10
iterations:

- plain: ``for batch in loader``: move to device, forward, cross entropy, ``zero_grad``, ``backward``,
  ``step``; every 10 iterations ``loss.item()`` into a log line (logger below its level, as kiln's is).
- kiln: ``Runner.train()`` given that DataLoader, with the default hooks (runtime info, timer, sampler seed,
  logger with ``interval=10``, param scheduler, checkpoint) and the default visualizer
  (``vis_data/scalars.json``); the CheckpointHook is told not to write files (``interval=-1,
  save_last=False``) because the plain loop saves nothing. The model and the train loop are built before the
  clock starts; ``train()`` is timed whole (optimizer wrapper, hooks' ``before_run``... included).
- kiln (config loader), for information: the same Runner given a dataloader *config*
  (``DefaultSampler(shuffle=True)``), i.e. kiln's data layer as well (its sampler and, when present, its
  per-sample seeding). This ratio measures the data layer too, not only the engine.

Times are the process CPU time (``time.process_time``; ``--wall`` for wall-clock time): both sides are single
threaded, and on a shared machine CPU time is much less disturbed by other jobs. They run alternately in one
process for R rounds; each prints ms per iteration, the script prints the
medians and the ratios to the plain loop. ``--profile`` instead runs kiln under cProfile.

``--callgrind`` gives a measure that the machine's load does not change: one process runs under ``valgrind
--tool=callgrind`` (instructions executed, counted the same whatever else runs); after a 1-epoch warm-up of
each side it runs each side for ``E1`` and for ``E2`` epochs (``--callgrind-epochs E1 E2``, default 1 3), each
run between two calls of a marker function on which callgrind dumps its counts. The difference of a side's two
counts divided by the difference of its iteration counts is the cost of one iteration without the per-run
start-up (building the Runner, hooks' ``before_run``...). It prints instructions per iteration and the ratios
kiln / plain. Slow (tens of minutes on a loaded machine: the imports run under valgrind too).
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from kiln.model import BaseModel
from kiln.runner import Runner

BATCH, LOG_INTERVAL, LR = 32, 10, 0.05
# CPU time of this process: on a shared machine other jobs inflate wall time (and its noise) far more. Both sides
# are single-threaded (torch.set_num_threads(1), num_workers=0), so CPU time is the time spent on the work.
_clock = time.process_time


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


def plain_loader(dataset: Dataset) -> DataLoader:
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0, collate_fn=default_collate,
                      generator=torch.Generator().manual_seed(0))


def run_plain(dataset: Dataset, epochs: int) -> tuple[float, int]:
    loader = plain_loader(dataset)
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    logger = logging.Logger('plain', level=logging.WARNING)
    device = torch.device('cpu')
    n = 0
    start = _clock()
    for epoch in range(epochs):
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
    return _clock() - start, n


def build_kiln(dataset: Dataset, epochs: int, work_dir: str, config_loader: bool = False) -> Runner:
    loader = loader_cfg(dataset) if config_loader else plain_loader(dataset)
    runner = Runner(model=MLP(), work_dir=work_dir, train_dataloader=loader,
                    train_cfg=dict(by_epoch=True, max_epochs=epochs),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=LR)),
                    default_hooks=dict(logger=dict(type='LoggerHook', interval=LOG_INTERVAL),
                                       checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False)),
                    randomness=dict(seed=0), log_level='WARNING')
    runner.model  # noqa: B018  (built before the clock starts)
    runner.train_loop  # noqa: B018
    return runner


def run_kiln(dataset: Dataset, epochs: int, config_loader: bool = False) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_kiln(dataset, epochs, work_dir, config_loader)
        start = _clock()
        runner.train()
        elapsed = _clock() - start
        n = runner.iter
        runner.close()
    return elapsed, n


SIDES = ('plain', 'kiln', 'kiln_cfg')


def run_side(side: str, dataset: Dataset, epochs: int) -> tuple[float, int]:
    if side == 'plain':
        return run_plain(dataset, epochs)
    return run_kiln(dataset, epochs, side == 'kiln_cfg')


_MARKER = 'os_getppid'  # CPython's os.getppid (nothing else calls it here): callgrind dumps its counts on each call


def _callgrind_child(epochs: tuple[int, int]) -> None:
    """Under callgrind: warm up each side, then run each side for each epoch count between two markers (each
    marker call makes callgrind dump and zero its counts), printing the iterations of each run."""
    marker = os.getppid
    torch.set_num_threads(1)
    dataset = Digits()
    for side in SIDES:
        run_side(side, dataset, 1)  # first-use imports, lazy initialisations
    marker()  # dump 1: start-up and warm-up
    for side in SIDES:
        for e in epochs:
            n = run_side(side, dataset, e)[1]
            marker()
            print(f'run {side} {e} {n}', flush=True)


def callgrind(e1: int, e2: int) -> None:
    if shutil.which('valgrind') is None:
        raise SystemExit('--callgrind needs valgrind (apt-get install valgrind)')
    with tempfile.TemporaryDirectory() as out_dir:
        out = os.path.join(out_dir, 'cg.out')
        cmd = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}', f'--dump-before={_MARKER}*',
               sys.executable, os.path.abspath(__file__), '--callgrind-child', str(e1), str(e2)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        runs = re.findall(r'^run (\w+) (\d+) (\d+)$', proc.stdout, re.M)
        if proc.returncode != 0 or len(runs) != 2 * len(SIDES):
            raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
        counts = []
        for dump in sorted((f for f in os.listdir(out_dir) if re.fullmatch(r'cg\.out\.\d+', f)),
                           key=lambda f: int(f.rsplit('.', 1)[1])):
            with open(os.path.join(out_dir, dump)) as f:
                counts.append(next(int(line.split()[1]) for line in f if line.startswith(('totals:', 'summary:'))))
    if len(counts) < 1 + len(runs):
        raise RuntimeError(f'callgrind wrote {len(counts)} dumps, expected at least {1 + len(runs)}')
    per_iter = {}
    for k, side in enumerate(SIDES):
        (_, _, n1), (_, _, n2) = runs[2 * k], runs[2 * k + 1]
        i1, i2 = counts[1 + 2 * k], counts[2 + 2 * k]
        per_iter[side] = (i2 - i1) / (int(n2) - int(n1))
        print(f'{side}: {i1} instructions in {n1} iterations, {i2} in {n2}: '
              f'{per_iter[side] / 1e6:.3f} M instructions per iteration')
    p = per_iter['plain']
    print(f'callgrind, instructions per iteration (epochs {e1} -> {e2}): plain {p / 1e6:.3f} M, kiln Runner '
          f'{per_iter["kiln"] / 1e6:.3f} M, ratio {per_iter["kiln"] / p:.3f}; config-built dataloader '
          f'{per_iter["kiln_cfg"] / 1e6:.3f} M, ratio {per_iter["kiln_cfg"] / p:.3f}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--profile', action='store_true', help='profile the kiln side with cProfile')
    parser.add_argument('--config-loader', action='store_true', help='--profile with the config-built loader')
    parser.add_argument('--wall', action='store_true', help='wall-clock time instead of process CPU time')
    parser.add_argument('--callgrind', action='store_true',
                        help='instructions per iteration under valgrind (independent of the load)')
    parser.add_argument('--callgrind-epochs', type=int, nargs=2, default=(1, 3), metavar=('E1', 'E2'))
    parser.add_argument('--callgrind-child', type=int, nargs=2, help=argparse.SUPPRESS)  # run by --callgrind
    args = parser.parse_args()
    if args.callgrind:
        callgrind(*args.callgrind_epochs)
        return
    if args.callgrind_child:
        _callgrind_child(tuple(args.callgrind_child))
        return
    if args.wall:
        global _clock
        _clock = time.perf_counter
    torch.set_num_threads(1)
    dataset = Digits()
    if args.profile:
        run_kiln(dataset, 1)  # warm-up: first-use imports
        with tempfile.TemporaryDirectory() as work_dir:
            runner = build_kiln(dataset, args.epochs, work_dir, args.config_loader)
            profiler = cProfile.Profile()
            profiler.runcall(runner.train)
            runner.close()
        pstats.Stats(profiler).sort_stats('tottime').print_stats(40)
        return
    run_plain(dataset, 1), run_kiln(dataset, 1), run_kiln(dataset, 1, True)  # warm-up
    plain, kiln, kiln_cfg = [], [], []
    for r in range(args.rounds):
        for side, out in zip(SIDES, (plain, kiln, kiln_cfg)):
            elapsed, n = run_side(side, dataset, args.epochs)
            out.append(elapsed / n * 1e3)
        print(f'round {r + 1}: plain {plain[-1]:.3f}  kiln {kiln[-1]:.3f} (ratio {kiln[-1] / plain[-1]:.3f})  '
              f'kiln+config loader {kiln_cfg[-1]:.3f} ms/iter')
    p, k, kc = statistics.median(plain), statistics.median(kiln), statistics.median(kiln_cfg)
    per_round = statistics.median(b / a for a, b in zip(plain, kiln))
    print(f'digits MLP, batch {BATCH}, {torch.get_num_threads()} thread, {n} iterations per run, '
          f'{args.rounds} rounds (medians): plain PyTorch {p:.3f} ms/iter, kiln Runner {k:.3f} ms/iter, '
          f'ratio {k / p:.2f} (median of the per-round ratios {per_round:.2f}, of the fastest rounds '
          f'{min(kiln) / min(plain):.2f}); kiln Runner with a config-built dataloader {kc:.3f} ms/iter, '
          f'ratio {kc / p:.2f}')


if __name__ == '__main__':
    main()
