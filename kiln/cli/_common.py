"""Helpers shared by the ``kiln`` sub-commands: config loading with ``--cfg-options``, work dir, Runner."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import Any

from kiln.config import Config, DictAction
from kiln.config.options import check_options, variable_options

__all__ = ['CLIError', 'add_cfg_options', 'load_config', 'set_work_dir', 'build_runner', 'describe_error']


class CLIError(Exception):
    """A user error reported as ``kiln <command>: error: <message>`` with exit status 2 (no traceback)."""


def describe_error(e: BaseException) -> str:
    """``'<ExceptionType>: <message>'`` followed by the exception's notes (which name the config file or the
    object being built), for a one-paragraph error report."""
    msg = str(e.args[0]) if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
    notes = [n for n in getattr(e, '__notes__', ()) if n not in msg]
    return ' '.join([f'{type(e).__name__}: {msg}', *notes])


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options key=value ...`` (MMEngine's DictAction syntax: ``a.b=1 c=[1,2] d=(3,4)``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, e.g. train_cfg.max_epochs=2 '
                             'optim_wrapper.optimizer.lr=0.01 (lists: a=[1,2], tuples: a=(1,2))')


def load_config(path: str, cfg_options: dict | None = None, command: str = 'kiln') -> Config:
    """``Config.fromfile(path)`` then ``merge_from_dict(cfg_options)``.

    Options are checked first (:func:`kiln.config.options.check_options`): a top-level key the config does not
    have prints ``kiln <command>: warning: ...`` with the closest existing keys on stderr; a string where the
    config has a number is an error. An option that sets a top-level non-dict value (``max_epochs=12``) is also
    a variable of the config file: the file is read again with that variable set
    (``Config.fromfile(..., variables=...)``), so the values computed from it follow.

    Raises:
        CLIError: the file does not exist or cannot be read (syntax error, missing base, error raised by the
            file, failed custom import ...), or an option does not fit; the message names the file or key.
    """
    if not osp.isfile(path):
        raise CLIError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except Exception as e:
        raise CLIError(f'cannot load config {path!r}: {describe_error(e)}') from e
    if not cfg_options:
        return cfg
    try:
        warnings = check_options(cfg, cfg_options)
    except TypeError as e:
        raise CLIError(str(e)) from e
    for warning in warnings:
        print(f'kiln {command}: warning: --cfg-options {warning}', file=sys.stderr)
    variables = variable_options(cfg, cfg_options)
    try:
        if variables:
            cfg = Config.fromfile(path, variables=variables)
        cfg.merge_from_dict(cfg_options)
    except Exception as e:
        raise CLIError(f'--cfg-options: {describe_error(e)}') from e
    return cfg


def set_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """``--work-dir`` wins, then the config's ``work_dir``, then ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    check_work_dir(str(cfg.work_dir))


def check_work_dir(work_dir: str) -> None:
    """Create ``work_dir`` and write a probe file in it, so that an unusable work dir is reported before
    anything is built (remote ``scheme://`` paths are left to the Runner).

    Raises:
        CLIError: the directory cannot be created or written to (names it and the reason).
    """
    if '://' in work_dir:
        return
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as e:
        raise CLIError(f'work dir {work_dir!r} is not usable: {e.strerror or e} '
                       f'({e.filename or work_dir}); pass a writable --work-dir') from e


def build_runner(cfg: Config) -> Any:
    """Import the config's ``default_scope`` (e.g. ``kiln.det``), then build the Runner: ``runner_type`` from
    RUNNERS when the config names one, else ``kiln.runner.Runner``, via ``from_cfg``."""
    from kiln.registry import RUNNERS, check_config_types, init_default_scope
    init_default_scope(cfg.get('default_scope', 'kiln'))
    check_config_types(cfg)  # a misspelt type stops here, before the Runner logs and builds anything
    runner_type = cfg.get('runner_type')
    if runner_type is None:
        from kiln.runner import Runner
        return Runner.from_cfg(cfg)
    cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) else runner_type
    return cls.from_cfg(cfg)
