"""Active learning on BCCD with one Runner: train, score the unlabelled pool, label the least-confident images,
train a fresh model on the larger labelled set, repeat.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python examples/active_learning.py            # 3 cycles, a few minutes on 2 cores
    PYTHONPATH=. .venv/bin/python examples/active_learning.py --cycles 2 --iters 2 --scale 128 96 --pool 8

The FCOS demo config (``configs/fcos/fcos_r18-slim_fpn_bccd.py``) is shrunk: smaller input, iteration-based
training for ``--iters`` iterations, no checkpoints, validation on ``--val-images`` images at the end of each
cycle. Every cycle uses only the public Runner API:

* ``runner.reset_model()`` -- a freshly initialised model, optimizer and schedulers (not for the first cycle);
* ``runner.new_session(name)`` -- a new log dir / visualizer run per cycle;
* ``runner.set_dataloader('train', train_set.subset(labelled))`` -- ``subset`` indices refer to the dataset's
  full, unfiltered ``full_data_list`` (the order of ``ImageSets/Main/train.txt``);
* ``runner.train()``.

Uncertainty (least confidence): for each unlabelled image, the model's detections are ranked by score; the
image's uncertainty is ``1 - mean(max_c scores_per_class)`` over its ``--top-k`` best detections (1 when it has
none). The ``--step`` most uncertain images are labelled next.
"""
from __future__ import annotations

import argparse
import copy
import random
import sys
from pathlib import Path

import torch

from kiln.config import Config
from kiln.hooks import Hook
from kiln.registry import DATASETS, init_default_scope
from kiln.runner import Runner

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'


class KeepMetrics(Hook):
    """Remembers the metrics of the last validation."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: dict = {}

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})


def shrink_config(args: argparse.Namespace) -> Config:
    """The demo config with a small input, ``args.iters`` iterations and a small validation set."""
    cfg = Config.fromfile(str(CONFIG))
    w, h = args.scale
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (w, h)
    for key in ('train_dataloader', 'val_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=args.workers, persistent_workers=False, batch_size=args.batch)
        loader.dataset.data_root = str(REPO / 'data' / 'bccd')
    cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline
    cfg.val_dataloader.dataset.pipeline = cfg.test_pipeline
    cfg.val_dataloader.dataset.indices = args.val_images
    cfg.test_dataloader = None
    cfg.test_evaluator = None
    cfg.test_cfg = None
    cfg.train_cfg = dict(by_epoch=False, max_iters=args.iters, val_interval=args.iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=max(1, args.iters // 5))]
    cfg.default_hooks = dict(checkpoint=None, logger=dict(type='LoggerHook', interval=max(1, args.iters // 4)))
    cfg.work_dir = args.work_dir
    cfg.log_level = args.log_level
    cfg.randomness = dict(seed=args.seed)
    return cfg


@torch.no_grad()
def uncertainty(runner: Runner, dataset, top_k: int) -> list[float]:
    """Least-confidence uncertainty of every image of ``dataset`` (in its order), from ``scores_per_class``."""
    loader = runner.build_dataloader(dict(dataset=dataset, batch_size=4, num_workers=0,
                                          sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
    model = runner.model
    model.eval()
    scores = []
    for batch in loader:
        for sample in model.test_step(batch):
            conf = sample.pred_instances.scores_per_class.max(dim=1).values  # (K,) best class probability
            top = conf.topk(min(top_k, len(conf))).values
            scores.append(1.0 - float(top.mean()) if len(top) else 1.0)
    return scores


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the cycles; returns one ``dict(cycle, labelled, metrics)`` per cycle (also printed)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cycles', type=int, default=3)
    p.add_argument('--init', type=int, default=24, help='randomly chosen images labelled at the start')
    p.add_argument('--step', type=int, default=24, help='images labelled per cycle')
    p.add_argument('--iters', type=int, default=60, help='training iterations per cycle')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--scale', type=int, nargs=2, default=(256, 192), metavar=('W', 'H'))
    p.add_argument('--val-images', type=int, default=40)
    p.add_argument('--pool', type=int, default=48, help='unlabelled images scored per cycle (random sample)')
    p.add_argument('--top-k', type=int, default=20)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', default='work_dirs/active_learning')
    p.add_argument('--log-level', default='WARNING')
    args = p.parse_args(argv)

    cfg = shrink_config(args)
    init_default_scope('kiln.det')
    train_set = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))  # train pipeline, filtered
    pool_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    pool_cfg.update(pipeline=cfg.test_pipeline, test_mode=True, filter_cfg=None)
    pool_set = DATASETS.build(pool_cfg)  # same records (same full_data_list order), test pipeline
    n = len(train_set.full_data_list)
    assert len(pool_set.full_data_list) == n

    rng = random.Random(args.seed)
    labelled = sorted(rng.sample(range(n), args.init))
    keep = KeepMetrics()
    cfg.custom_hooks = [keep]
    runner = Runner.from_cfg(cfg)
    results = []
    for cycle in range(1, args.cycles + 1):
        if cycle > 1:
            runner.reset_model()
            runner.new_session(f'cycle{cycle}')
        runner.set_dataloader('train', train_set.subset(labelled))
        runner.train()
        metric = keep.metrics.get('coco/bbox_mAP', float('nan'))
        results.append(dict(cycle=cycle, labelled=len(labelled), metrics=dict(keep.metrics)))
        print(f'cycle {cycle}: {len(labelled):3d} labelled images, coco/bbox_mAP {metric:.3f}, '
              f"mAP_50 {keep.metrics.get('coco/bbox_mAP_50', float('nan')):.3f}", flush=True)
        if cycle == args.cycles:
            break
        unlabelled = [i for i in range(n) if i not in set(labelled)]
        candidates = sorted(rng.sample(unlabelled, min(args.pool, len(unlabelled))))
        pool = pool_set.subset(candidates)
        scores = uncertainty(runner, pool, args.top_k)
        ranked = sorted(zip(scores, pool.full_indices), key=lambda t: -t[0])
        labelled = sorted(labelled + [i for _, i in ranked[:args.step]])
    runner.close()
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
