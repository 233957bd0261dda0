"""Helpers shared by the ``kiln`` sub-commands: config loading with ``--cfg-options``, work dir, Runner."""
from __future__ import annotations

import argparse
import os.path as osp
from typing import Any

from kiln.config import Config, DictAction

__all__ = ['CLIError', 'add_cfg_options', 'load_config', 'set_work_dir', 'build_runner']


class CLIError(Exception):
    """A user error reported as ``kiln <command>: error: <message>`` with exit status 2 (no traceback)."""


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options key=value ...`` (MMEngine's DictAction syntax: ``a.b=1 c=[1,2] d=(3,4)``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, e.g. train_cfg.max_epochs=2 '
                             'optim_wrapper.optimizer.lr=0.01 (lists: a=[1,2], tuples: a=(1,2))')


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """``Config.fromfile(path)`` then ``merge_from_dict(cfg_options)``.

    Raises:
        CLIError: the file does not exist.
    """
    if not osp.isfile(path):
        raise CLIError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """``--work-dir`` wins, then the config's ``work_dir``, then ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config) -> Any:
    """Import the config's ``default_scope`` (e.g. ``kiln.det``), then build the Runner: ``runner_type`` from
    RUNNERS when the config names one, else ``kiln.runner.Runner``, via ``from_cfg``."""
    from kiln.registry import RUNNERS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'kiln'))
    runner_type = cfg.get('runner_type')
    if runner_type is None:
        from kiln.runner import Runner
        return Runner.from_cfg(cfg)
    cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) else runner_type
    return cls.from_cfg(cfg)
