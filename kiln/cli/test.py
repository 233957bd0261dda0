"""``kiln test CONFIG CHECKPOINT``: evaluate a checkpoint on the test set (MMDetection's ``tools/test.py``)."""
from __future__ import annotations

import argparse
import json
import logging
import os.path as osp
from typing import Any

from kiln.registry.build_context import config_root

from ._common import CLIError, add_cfg_options, build_runner, load_config, set_work_dir
from .train import LAUNCHERS

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``test`` sub-command."""
    p = subparsers.add_parser('test', help='evaluate a checkpoint on the test dataloader',
                              description='Evaluate CHECKPOINT with the config\'s test_dataloader / '
                                          'test_evaluator; prints the metrics as JSON.')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='directory for the evaluation logs')
    p.add_argument('--show-dir', help='save drawn predictions to this directory (relative to the run\'s log '
                                      'dir); needs default_hooks.visualization in the config')
    p.add_argument('--out', help='also dump the raw predictions to this pickle file (DumpResults)')
    p.add_argument('--tta', action='store_true', help="test-time augmentation: wrap the model in the config's "
                   'tta_model and use tta_pipeline as the test pipeline (MMDetection\'s --tta)')
    add_cfg_options(p)
    p.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher for distributed testing')
    p.add_argument('--no-progress', action='store_true',
                   help='no live progress display for validation / test (plain log lines only)')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load the config, point ``load_from`` at the checkpoint, run ``Runner.test()`` and print the metrics."""
    import os
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise CLIError(f'checkpoint file {args.checkpoint!r} does not exist')
    cfg = load_config(args.config, args.cfg_options, command='test')
    from kiln.utils.malloc import tune_malloc
    tune_malloc((cfg.get('env_cfg') or {}).get('malloc_cfg'), source='kiln test')  # the Runner applies it too
    cfg.launcher = args.launcher
    from kiln.logging.progress import configure_progress
    configure_progress(cfg, enabled=not args.no_progress)  # the Runner's default `progress` hook: off if asked
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir is not None:
        hooks = cfg.get('default_hooks') or {}
        if not hooks.get('visualization'):
            raise CLIError('--show-dir needs a visualization hook in the config, e.g. default_hooks.visualization'
                           "=dict(type='DetVisualizationHook')")
        hooks['visualization']['draw'] = True
        hooks['visualization']['test_out_dir'] = args.show_dir
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise CLIError(f'--out must be a .pkl or .pickle file, got {args.out!r}')
        evaluator = cfg.get('test_evaluator')
        evaluators = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator] if evaluator else []
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=args.out)]
    if args.tta:
        _use_tta(cfg)
    with config_root(cfg):  # build errors name the config key path (model.bbox_head.loss_cls)
        runner = build_runner(cfg)
        _load_strict(runner, args.checkpoint)
        metrics = runner.test()
    print(json.dumps(_jsonable(metrics), indent=2))
    return 0


def _use_tta(cfg: Any) -> None:
    """``--tta``: ``model = dict(**tta_model, module=model)`` and the (innermost) test dataset's pipeline =
    ``tta_pipeline``, as MMDetection's ``tools/test.py``. Raises CLIError when the config lacks either key."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if not cfg.get(k)]
    if missing:
        raise CLIError(f'--tta needs {" and ".join(missing)} in the config, e.g. tta_model = dict(type='
                       "'DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)) "
                       "and tta_pipeline = [LoadImageFromFile, dict(type='TestTimeAug', transforms=[...])]")
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    dataset['pipeline'] = cfg.tta_pipeline


def _load_strict(runner: Any, checkpoint: str) -> None:
    """Load the checkpoint with every key and shape matched: a head left with its random initialisation (other
    ``num_classes``, other model) would be evaluated as if trained. Raises CLIError naming the keys/shapes."""
    from kiln.checkpoint import CheckpointError
    from kiln.logging import log_to_files
    try:
        runner.load_checkpoint(checkpoint, strict=True)
    except CheckpointError as e:
        message = (f'checkpoint {checkpoint!r} does not fit the model of the config (train it with this config, '
                   f'or fix num_classes / the model): {e}')
        # in the run's log file too; the terminal gets the CLI error line
        log_to_files(runner.logger, logging.ERROR, message)
        raise CLIError(message) from e


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'tolist'):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
