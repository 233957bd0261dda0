"""``kiln eval-watch WORK_DIR``: validate each new checkpoint of a training run as it appears (docs/eval_watch.md)."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Any

from kiln.registry.build_context import config_root

from ._common import CLIError, add_cfg_options, build_runner, load_config

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``eval-watch`` sub-command."""
    p = subparsers.add_parser(
        'eval-watch', help='evaluate the checkpoints of a training run as they appear (in another process)',
        description='Validate every new epoch_N.pth / iter_N.pth of WORK_DIR once, in order, with the config\'s '
                    'val_dataloader / val_evaluator; merge the metrics into the run\'s scalars.json and '
                    'WORK_DIR/eval_watch/metrics.jsonl, keep the best checkpoint in eval_watch/best.json (+ a '
                    'best_<metric>.pth link) and optionally write WORK_DIR/STOP to end the training. The state '
                    'is kept in WORK_DIR/eval_watch/state.json: a restarted watcher continues where it stopped.')
    p.add_argument('work_dir', help='the training run\'s work dir (local path or fsspec URL)')
    p.add_argument('--config', help='config file (default: the config the training run dumped into WORK_DIR)')
    p.add_argument('--interval', type=float, default=30.0, help='seconds between polls (default 30)')
    p.add_argument('--device', default=None, help='device for the evaluation, e.g. cpu or cuda:1 '
                                                  '(default: CUDA if available, else CPU)')
    p.add_argument('--metric', default=None, help='metric deciding the best checkpoint and the stop file '
                                                  '(default: the first metric, e.g. coco/bbox_mAP)')
    p.add_argument('--rule', choices=('greater', 'less'), default=None,
                   help="'greater' or 'less' is better (default: less for keys with 'loss', else greater)")
    p.add_argument('--stop-after-no-improvement', type=int, default=None, metavar='N',
                   help='write WORK_DIR/STOP (honoured by StopFileHook) after N evaluations without improvement')
    p.add_argument('--min-delta', type=float, default=0.0, help='smallest change counted as an improvement')
    p.add_argument('--once', action='store_true', help='evaluate the checkpoints present now, then exit')
    p.add_argument('--max-idle', type=float, default=None, metavar='S',
                   help='exit after S seconds without a new checkpoint (default: run until interrupted)')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def _find_config(work_dir: str) -> str:
    """The newest ``*.py`` at the top of ``work_dir`` (``Runner`` dumps the training config there)."""
    if '://' in work_dir:
        raise CLIError(f'{work_dir} is a URL: pass --config')
    try:
        files = [osp.join(work_dir, f) for f in os.listdir(work_dir) if f.endswith('.py')]
    except OSError as e:
        raise CLIError(f'work dir {work_dir!r} cannot be read: {e}') from e
    if not files:
        raise CLIError(f'{work_dir} holds no dumped config (*.py): pass --config')
    return max(files, key=osp.getmtime)


def build_evaluate(cfg: Any, work_dir: str, device: str | None) -> Any:
    """A function ``checkpoint path -> (metrics, meta)`` validating with one Runner built from ``cfg`` (its logs
    go to ``WORK_DIR/eval_watch/<timestamp>``)."""
    cfg.work_dir = osp.join(work_dir, 'eval_watch') if '://' not in work_dir else work_dir.rstrip('/') + '/eval_watch'
    cfg.load_from, cfg.resume = None, False
    # the evaluation Runner keeps its logs local: the trackers get the metrics from the watcher's visualizer,
    # at the checkpoint's iteration (see build_visualizer)
    vis = cfg.get('visualizer')
    if isinstance(vis, dict):
        cfg.visualizer = dict(vis, vis_backends=[dict(type='LocalVisBackend')])
    if cfg.get('val_dataloader') is None:
        raise CLIError('the config has no val_dataloader to evaluate the checkpoints with')
    with config_root(cfg):
        runner = build_runner(cfg)
    if device is not None:
        runner.model.to(device)

    def evaluate(path: str) -> tuple[dict, dict]:
        checkpoint = runner.load_checkpoint(path)
        metrics = runner.val()
        meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
        return dict(metrics), dict(epoch=meta.get('epoch'), iter=meta.get('iter'))

    return evaluate


def build_visualizer(vis_cfg: Any, work_dir: str, run_name: str | None) -> Any:
    """The watcher's Visualizer: the config's ``visualizer`` with its tracker backends (``LocalVisBackend``
    dropped: the watcher merges into the run's ``scalars.json`` itself), saving under
    ``WORK_DIR/eval_watch/<run>-eval-watch/vis_data``, so trackers that name runs after the run directory
    (MLflow, ClearML) call it ``<run>-eval-watch``. None when the config names no other backend."""
    if not isinstance(vis_cfg, dict):
        return None
    backends = [b for b in (vis_cfg.get('vis_backends') or [])
                if not (isinstance(b, dict) and b.get('type') in ('LocalVisBackend', 'kiln.LocalVisBackend'))]
    if not backends:
        return None
    from kiln.runner.builders import build_visualizer as _build
    name = f'{run_name or "run"}-eval-watch'
    root = work_dir.rstrip('/') + '/eval_watch' if '://' in work_dir else osp.join(work_dir, 'eval_watch')
    save_dir = f'{root}/{name}/vis_data' if '://' in work_dir else osp.join(root, name, 'vis_data')
    cfg = dict(vis_cfg)
    cfg.update(vis_backends=backends, save_dir=save_dir, name=name)
    return _build(cfg, name, save_dir)


def run(args: argparse.Namespace) -> int:
    """Build the evaluation Runner, then poll WORK_DIR (see :class:`kiln.evaluator.watcher.CheckpointWatcher`)."""
    from kiln.evaluator.watcher import CheckpointWatcher
    work_dir = os.fspath(args.work_dir)
    if '://' not in work_dir and not osp.isdir(work_dir):
        raise CLIError(f'work dir {work_dir!r} does not exist')
    if args.interval <= 0:
        raise CLIError(f'--interval must be > 0, got {args.interval}')
    config = args.config or _find_config(work_dir)
    cfg = load_config(config, args.cfg_options, command='eval-watch')
    vis_cfg = cfg.get('visualizer')
    vis_cfg = vis_cfg.to_dict() if hasattr(vis_cfg, 'to_dict') else vis_cfg
    evaluate = build_evaluate(cfg, work_dir, args.device)
    try:
        watcher = CheckpointWatcher(work_dir, evaluate, metric=args.metric, rule=args.rule,
                                    stop_after_no_improvement=args.stop_after_no_improvement,
                                    min_delta=args.min_delta, log=lambda s: print(s, flush=True))
    except ValueError as e:
        raise CLIError(str(e)) from e
    try:
        watcher.visualizer = build_visualizer(vis_cfg, work_dir, watcher.training_run())
        watcher.run(interval=args.interval, once=args.once, max_idle=args.max_idle)
    except KeyboardInterrupt:
        print('eval-watch: interrupted; the state is saved, run the same command to continue', flush=True)
    finally:
        watcher.close()
    return 0
