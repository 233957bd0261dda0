"""Reuse one Runner for several experiments (active learning, notebooks): fresh model, new data, new session.

The Runner exposes these as ``runner.reset_model()``, ``runner.set_dataloader(split, data)``,
``runner.new_session(name)`` and the ``work_dir`` / ``log_dir`` setters; the work is done here.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import TYPE_CHECKING, Any

from torch import nn

from kiln.dist import is_main_process
from kiln.logging import MessageHub, close_logger, get_logger

from . import builders as B
from .env import make_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Runner

__all__ = ['reset_model', 'set_dataloader', 'new_session', 'set_work_dir', 'set_log_dir']

_SPLITS = ('train', 'val', 'test')


def reset_model(runner: Runner) -> nn.Module:
    """Give ``runner`` a freshly initialised model, optimizer wrapper and schedulers; reset the loop counters.

    A model config is built again (``init_cfg`` applied by ``init_weights()``); a model passed as an object is
    re-initialised in place (``reset_parameters()`` of every sub-module that has one, then ``init_weights()``).
    ``load_from`` weights are loaded again (as at the first ``train()``); ``resume`` is not applied again. An
    optimizer wrapper / schedulers given as configs are rebuilt; an optimizer wrapper given as an object gets a
    new optimizer of the same class and defaults over the new parameters. Hook states are kept.

    Returns:
        The new (wrapped) model.
    """
    src = runner._model_src
    if isinstance(src, nn.Module):
        model = B.unwrap_model(src)
        for module in model.modules():
            if hasattr(module, 'reset_parameters') and callable(module.reset_parameters):
                module.reset_parameters()
            if hasattr(module, 'is_init'):
                module.is_init = False
        runner._model = None
    else:
        runner._model = None
    runner._inited_model = None
    runner._has_loaded = False
    runner._resume = False
    model = runner.model  # builds (config) or moves + wraps (object)
    runner._init_model_weights()
    if runner._load_from:
        runner.load_checkpoint(runner._load_from)
    if runner._train_loop is not None:
        runner._train_loop.reset()
    runner._train_calls = 0
    wrapper_src = runner._optim_wrapper_src
    if wrapper_src is not None:
        if isinstance(wrapper_src, dict):
            runner._optim_wrapper = B.build_optim_wrapper(model, wrapper_src)
        else:
            old = wrapper_src.optimizer
            wrapper_src.optimizer = type(old)(B.unwrap_model(model).parameters(), **old.defaults)
            runner._optim_wrapper = wrapper_src
        if runner._param_scheduler_src is not None and runner._train_loop is not None:
            loop = runner._train_loop
            runner._param_schedulers = B.build_param_schedulers(
                runner._param_scheduler_src, runner._optim_wrapper, _len(loop.dataloader), loop.max_epochs,
                loop.max_iters)
    return model


def set_dataloader(runner: Runner, split: str, data: Any) -> None:
    """Use ``data`` for the ``split`` ('train', 'val' or 'test') dataloader from now on.

    ``data`` may be a ``DataLoader`` (used as is), a full dataloader config (a dict with ``dataset``), or a
    dataset / dataset config (a dict with ``type``), which replaces the ``dataset`` of the current dataloader
    config (batch size, sampler, workers and collate function are kept; a dataloader given as an object
    lends its ``batch_size``, ``num_workers`` and ``collate_fn``). The loop of that split is rebuilt on next
    use, with the runner's seed.

    Raises:
        ValueError: ``split`` is not 'train', 'val' or 'test'.
        TypeError: ``data`` is none of the above.
    """
    if split not in _SPLITS:
        raise ValueError(f"set_dataloader: split must be one of {_SPLITS}, got {split!r}")
    old = getattr(runner, f'_{split}_dataloader_src')
    if _is_loader(data) or (isinstance(data, dict) and 'dataset' in data):
        new = data
    elif isinstance(data, dict) and 'type' in data or _is_dataset(data):
        new = _loader_cfg(old, split)
        new['dataset'] = data
    else:
        raise TypeError(f"set_dataloader('{split}'): expected a DataLoader, a dataloader config (dict with "
                        f"'dataset'), a dataset or a dataset config (dict with 'type'), got {type(data).__name__}")
    setattr(runner, f'_{split}_dataloader_src', new)
    setattr(runner, f'_{split}_loop', None)


def _loader_cfg(old: Any, split: str) -> dict:
    if isinstance(old, dict):
        return copy.copy(dict(old))
    cfg: dict = dict(sampler=dict(type='DefaultSampler', shuffle=split == 'train'))
    if _is_loader(old):
        cfg.update(batch_size=old.batch_size or 1, num_workers=old.num_workers, collate_fn=old.collate_fn)
    return cfg


def _is_loader(obj: Any) -> bool:
    return hasattr(obj, 'dataset') and hasattr(obj, 'num_workers') and hasattr(obj, '__iter__')


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, '__getitem__') and hasattr(obj, '__len__') and not isinstance(obj, (dict, str, list))


def set_work_dir(runner: Runner, work_dir: str | os.PathLike) -> None:
    """Checkpoints and ``last_checkpoint`` go to ``work_dir`` from now on (created). The log stays where it
    is until the next :func:`new_session`, whose log dir is ``work_dir/<timestamp>``."""
    runner._work_dir = osp.abspath(os.fspath(work_dir))
    os.makedirs(runner._work_dir, exist_ok=True)


def set_log_dir(runner: Runner, log_dir: str | os.PathLike) -> None:
    """Start a new logging session writing to ``log_dir`` (see :func:`new_session`)."""
    new_session(runner, log_dir=log_dir)


def new_session(runner: Runner, name: str | None = None, log_dir: str | os.PathLike | None = None) -> None:
    """Close the current logging / visualization session and open a fresh one.

    The text log file and the visualizer backends are closed; a new timestamp is taken; the new log goes to
    ``log_dir`` (default ``work_dir/<new timestamp>``) as ``<timestamp>.log``, the backends write to
    ``<log_dir>/vis_data`` (new backend runs, given the config); the message hub starts empty; ``experiment_name`` becomes
    ``name`` (default ``<old name prefix>_<timestamp>``). Model, data and hooks are untouched.
    """
    meta = runner.visualizer.dataset_meta
    runner.visualizer.close()
    close_logger(runner._logger)
    stamp = make_timestamp()
    if log_dir is None:  # two sessions in the same second: keep their directories apart
        n, base = 1, stamp
        while stamp == runner._timestamp or osp.exists(osp.join(runner._work_dir, stamp)):
            stamp, n = f'{base}_{n}', n + 1
    runner._timestamp = stamp
    runner._log_dir = osp.abspath(os.fspath(log_dir)) if log_dir is not None else osp.join(runner._work_dir, stamp)
    runner._experiment_name = name or stamp
    runner._logger = get_logger('kiln', log_file=osp.join(runner._log_dir, f'{stamp}.log'),
                                log_level=runner._log_level)
    runner.message_hub = MessageHub(name=runner._experiment_name)
    vis = runner._visualizer_cfg
    if vis is not None and not isinstance(vis, dict):  # a built visualizer: a new one of its class and backends
        backends = [dict(type=type(b)) for b in getattr(vis, '_vis_backends', {}).values()]
        vis = dict(type=type(vis), vis_backends=backends or [dict(type='LocalVisBackend')])
    runner.visualizer = B.build_visualizer(vis, runner._experiment_name, osp.join(runner._log_dir, 'vis_data'))
    runner.visualizer.dataset_meta = meta
    if len(runner.cfg) and is_main_process():
        runner.visualizer.add_config(runner.cfg)  # each backend run carries the config, as at start-up
    for loop in (runner._val_loop, runner._test_loop):  # evaluators log through the runner's logger
        if getattr(loop, 'evaluator', None) is not None:
            loop.evaluator.logger = runner._logger
    runner.logger.info(f'new session {runner._experiment_name}: log dir {runner._log_dir}')


def _len(dataloader: Any) -> int | None:
    try:
        return len(dataloader)
    except TypeError:
        return None
