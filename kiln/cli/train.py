"""``kiln train CONFIG``: train a model (MMDetection's ``tools/train.py``)."""
from __future__ import annotations

import argparse

from kiln.registry.build_context import config_root

from ._common import CLIError, add_cfg_options, build_runner, load_config, set_work_dir

__all__ = ['add_parser', 'run']

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
_DIST_EPILOG = '''distributed training (see docs/distributed.md):
  one machine, 4 processes:   torchrun --nproc-per-node 4 -m kiln.cli train CFG --launcher pytorch
  2 machines x 8 (on each):   torchrun --nnodes 2 --node-rank R --master-addr HOST0 --master-port 29500 \\
                                --nproc-per-node 8 -m kiln.cli train CFG --launcher pytorch
  restart on failure:         add --max-restarts 3 to torchrun and --resume to kiln train
  Slurm:                      srun --ntasks 16 --ntasks-per-node 8 python -m kiln.cli train CFG --launcher slurm'''


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``train`` sub-command."""
    p = subparsers.add_parser('train', help='train a model from a config file',
                              description='Train a model. Checkpoints and logs go to the work dir '
                                          '(default ./work_dirs/<config name>).',
                              epilog=_DIST_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', help='config file (.py, .json, .yaml); omit it with --data')
    p.add_argument('--data', metavar='PATH', help='zero-config training on a dataset folder (COCO / VOC / YOLO): '
                   'handled by an installed toolbox (entry-point group kiln.zero_config), see docs/own_data.md')
    p.add_argument('--model', help='with --data: the model (kiln.det: atss, fcos, retinanet, faster-rcnn, mask-rcnn)')
    p.add_argument('--epochs', type=int, help='with --data: number of epochs (default: scaled to the data)')
    p.add_argument('--img-size', type=int, help='with --data: input long side in pixels (default: from the data)')
    p.add_argument('--work-dir', help='directory for logs and checkpoints')
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                   help='resume training: from CKPT, or without a value from the latest checkpoint of the work dir')
    p.add_argument('--amp', action='store_true', help='mixed precision training (AmpOptimWrapper)')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the learning rate by total batch size / auto_scale_lr.base_batch_size')
    add_cfg_options(p)
    p.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher for distributed training')
    p.add_argument('--no-progress', action='store_true',
                   help='no live progress display for validation / test (plain log lines only)')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load and adjust the config as the options say, build the Runner and train."""
    import os
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    from kiln.utils.malloc import tune_malloc
    if args.data is not None or args.config is None:
        tune_malloc(source='kiln train')  # opt-in (KILN_MALLOC=1): freed activation memory back (glibc only)
        return _run_zero_config(args)
    cfg = load_config(args.config, args.cfg_options, command='train')
    tune_malloc((cfg.get('env_cfg') or {}).get('malloc_cfg'), source='kiln train')  # the Runner applies it too
    cfg.launcher = args.launcher
    from kiln.logging.progress import configure_progress
    configure_progress(cfg, enabled=not args.no_progress)  # the Runner's default `progress` hook: off if asked
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        optim_wrapper = cfg.get('optim_wrapper')
        if optim_wrapper is None:
            raise CLIError('--amp: the config has no optim_wrapper')
        if optim_wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise CLIError(f"--amp works with optim_wrapper.type='OptimWrapper', got {optim_wrapper.get('type')!r}")
        optim_wrapper['type'] = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise CLIError('--auto-scale-lr: the config has no auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr['enable'] = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    with config_root(cfg):  # build errors name the config key path (model.bbox_head.loss_cls)
        runner = build_runner(cfg)
        runner.train()
    return 0


def _run_zero_config(args: argparse.Namespace) -> int:
    """``kiln train --data PATH``: hand over to the toolbox registered in the ``kiln.zero_config`` entry-point group
    (kiln.det: ``det = "kiln.det.apis.zero_config:train_on_folder_cli"``), so the engine imports no toolbox."""
    from importlib.metadata import entry_points
    if args.config is not None and args.data is not None:
        raise CLIError('give either a config file or --data PATH, not both')
    if args.data is None:  # a usage error, as argparse reports a missing positional argument
        import sys
        print('kiln train: error: a config file is required (or --data PATH for zero-config training)',
              file=sys.stderr)
        raise SystemExit(2)
    eps = sorted(entry_points(group='kiln.zero_config'), key=lambda e: e.name)
    if not eps:
        raise CLIError('--data needs a toolbox that provides zero-config training (entry-point group '
                       'kiln.zero_config, e.g. kiln.det); none is installed')
    ep = next((e for e in eps if e.name == 'det'), eps[0])
    return int(ep.load()(args) or 0)
