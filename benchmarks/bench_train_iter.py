"""Time one training iteration of the BCCD demo detector (forward + backward + SGD step).

Usage: ``.venv/bin/python benchmarks/bench_train_iter.py [CONFIG] [--iters N] [--threads T]``.
Builds the model of CONFIG (default: the demo config), loads one real training batch of BCCD images through the
config's train pipeline and data preprocessor, runs 2 warm-up iterations, then reports the median and mean
seconds per iteration over N iterations (no data loading in the timed part).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from kiln.config import Config
from kiln.dataset import pseudo_collate
from kiln.optim import build_optim_wrapper
from kiln.registry import DATASETS, MODELS, init_default_scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default='configs/fcos/fcos_r18-slim_fpn_bccd.py')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope'))
    torch.manual_seed(0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch_size = cfg.train_dataloader.batch_size
    batch = pseudo_collate([dataset[i] for i in range(batch_size)])
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    times = []
    for i in range(args.iters + 2):
        start = time.perf_counter()
        model.train_step(batch, optim_wrapper)
        if i >= 2:
            times.append(time.perf_counter() - start)
    shape = tuple(batch['inputs'][0].shape)
    print(f'{args.config}: batch {batch_size} x {shape}, {torch.get_num_threads()} threads: '
          f'median {statistics.median(times):.3f} s/iter, mean {statistics.mean(times):.3f} s/iter '
          f'over {args.iters} iterations')


if __name__ == '__main__':
    main()
