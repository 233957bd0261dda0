"""Small functions that build the Runner's parts from their config sections (each testable alone).

Every ``build_*`` accepts either a config dict (``ConfigDict``) or an already built object, which it returns
unchanged. Reference: the ``Runner.build_*`` methods of MMEngine (same config keys), re-implemented.
"""
from __future__ import annotations

import logging
from typing import Any

from torch import nn

from kiln.dataset.loader import build_dataloader
from kiln.model.wrappers.utils import unwrap_model
from kiln.registry import EVALUATOR, HOOKS, LOG_PROCESSORS, LOOPS, MODELS, PARAM_SCHEDULERS, VISUALIZERS

__all__ = ['build_dataloader', 'build_param_schedulers', 'build_hook', 'build_train_loop', 'build_eval_loop',
           'build_evaluator', 'build_model', 'wrap_model', 'unwrap_model', 'build_optim_wrapper', 'scale_lr',
           'build_log_processor', 'build_visualizer']


def _plain(cfg: Any) -> dict:
    """A shallow plain-dict copy of a (Config)dict: building pops keys from it, never from the caller's config
    (objects inside, e.g. a built dataset, are shared, not copied)."""
    return dict(cfg)


# -------------------------------------------------------------------------------------- schedulers
def build_param_schedulers(cfgs: Any, optim_wrapper: Any, epoch_length: int | None,
                           max_epochs: int | None = None, max_iters: int | None = None) -> Any:
    """Build parameter schedulers from a config dict, a list of them (or built schedulers), or a dict
    ``{optimizer name: list}`` for an ``OptimWrapperDict``.

    Each config is built from PARAM_SCHEDULERS with ``optimizer=optim_wrapper``. A missing ``end`` defaults to
    ``max_epochs`` (``by_epoch=True``, the default) or ``max_iters``. ``convert_to_iter_based=True`` builds
    the scheduler with ``build_iter_from_epoch(..., epoch_length=epoch_length)`` so that an epoch-valued
    schedule is stepped every iteration.

    Returns:
        A list of schedulers (a dict of lists for a dict input; ``[]`` for None).

    Raises:
        ValueError: ``convert_to_iter_based`` without ``epoch_length`` or together with ``by_epoch=False``.
    """
    if cfgs is None:
        return []
    if isinstance(cfgs, dict) and 'type' not in cfgs:
        return {key: build_param_schedulers(value, optim_wrapper[key], epoch_length, max_epochs, max_iters)
                for key, value in cfgs.items()}
    if isinstance(cfgs, dict) or not isinstance(cfgs, (list, tuple)):
        cfgs = [cfgs]
    schedulers = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict):
            schedulers.append(cfg)
            continue
        cfg = _plain(cfg)
        by_epoch = cfg.get('by_epoch', True)
        default_end = max_epochs if by_epoch else max_iters
        if default_end is not None:
            cfg.setdefault('end', default_end)
        if cfg.pop('convert_to_iter_based', False):
            if not by_epoch:
                raise ValueError(f'param_scheduler[{i}]: convert_to_iter_based=True needs by_epoch=True')
            if not epoch_length:
                raise ValueError(f'param_scheduler[{i}]: convert_to_iter_based=True needs the train '
                                 'dataloader length')
            cls = cfg.pop('type')
            cls = PARAM_SCHEDULERS.get(cls) if isinstance(cls, str) else cls
            schedulers.append(cls.build_iter_from_epoch(optimizer=optim_wrapper, epoch_length=epoch_length,
                                                        **cfg))
        else:
            schedulers.append(PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optim_wrapper)))
    return schedulers


# ------------------------------------------------------------------------------------------- hooks
def build_hook(cfg: Any, priority: Any = None) -> Any:
    """Build a hook from a config (its optional ``priority`` key overrides the class default) or take a built
    one; ``priority`` (if not None) is set on the hook as its ``priority`` attribute.

    Raises:
        TypeError: ``cfg`` is neither a dict nor a hook-like object.
    """
    if isinstance(cfg, dict):
        cfg = _plain(cfg)
        priority = cfg.pop('priority', priority)
        hook = HOOKS.build(cfg)
    elif hasattr(cfg, 'get_triggered_stages') or hasattr(cfg, 'before_run'):
        hook = cfg
    else:
        raise TypeError(f'a hook must be a config dict or a Hook, got {type(cfg).__name__}')
    if priority is not None:
        hook.priority = priority
    return hook


# ------------------------------------------------------------------------------------------- loops
def build_train_loop(cfg: Any, runner: Any, dataloader: Any) -> Any:
    """Build the train loop from ``train_cfg``: ``type`` from LOOPS, or when absent ``EpochBasedTrainLoop`` if
    ``by_epoch`` (default: True unless only ``max_iters`` is given) else ``IterBasedTrainLoop``.

    Raises:
        TypeError: ``cfg`` is not a dict nor a loop object.
    """
    if not isinstance(cfg, dict):
        if hasattr(cfg, 'run'):
            return cfg
        raise TypeError(f'train_cfg must be a dict or a loop, got {type(cfg).__name__}')
    cfg = _plain(cfg)
    by_epoch = cfg.pop('by_epoch', None)
    if 'type' not in cfg:
        if by_epoch is None:
            by_epoch = 'max_iters' not in cfg or 'max_epochs' in cfg
        cfg['type'] = 'EpochBasedTrainLoop' if by_epoch else 'IterBasedTrainLoop'
    return LOOPS.build(cfg, default_args=dict(runner=runner, dataloader=dataloader))


def build_eval_loop(cfg: Any, runner: Any, dataloader: Any, evaluator: Any, default_type: str) -> Any:
    """Build a val/test loop from ``val_cfg``/``test_cfg`` (``type`` defaults to ``default_type``, i.e.
    ``'ValLoop'`` or ``'TestLoop'``) with the given dataloader (config or object) and evaluator."""
    if not isinstance(cfg, dict):
        if hasattr(cfg, 'run'):
            return cfg
        raise TypeError(f'{default_type} config must be a dict or a loop, got {type(cfg).__name__}')
    cfg = _plain(cfg)
    cfg.setdefault('type', default_type)
    return LOOPS.build(cfg, default_args=dict(runner=runner, dataloader=dataloader, evaluator=evaluator))


def build_evaluator(cfg: Any) -> Any:
    """Build an ``Evaluator``: from ``dict(type=..., metrics=...)`` via EVALUATOR, or from one metric config /
    a list of metric configs (wrapped in ``Evaluator(metrics=...)``); an object with ``process`` and
    ``evaluate`` is returned unchanged (so is a single built metric, wrapped)."""
    if isinstance(cfg, dict) and 'metrics' in cfg:
        cfg = _plain(cfg)
        cfg.setdefault('type', 'Evaluator')
        return EVALUATOR.build(cfg)
    if not isinstance(cfg, (dict, list, tuple)) and hasattr(cfg, 'metrics') and hasattr(cfg, 'evaluate'):
        return cfg  # an Evaluator
    metrics = [cfg] if not isinstance(cfg, (list, tuple)) else list(cfg)
    return EVALUATOR.build(dict(type='Evaluator', metrics=metrics))


# ------------------------------------------------------------------------------------------- model
def build_model(cfg: Any, data_preprocessor: Any = None) -> nn.Module:
    """Build the model from MODELS (``data_preprocessor``, if given, becomes the config's default
    ``data_preprocessor``); an ``nn.Module`` is returned unchanged.

    Raises:
        TypeError: ``cfg`` is neither a dict nor an ``nn.Module``.
    """
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f'model must be a config dict or an nn.Module, got {type(cfg).__name__}')
    cfg = _plain(cfg)
    if data_preprocessor is not None:
        cfg.setdefault('data_preprocessor', data_preprocessor)
    return MODELS.build(cfg)


def wrap_model(model: nn.Module, distributed: bool, wrapper_cfg: dict | None = None,
               find_unused_parameters: bool = False, sync_bn: str | None = None) -> nn.Module:
    """Wrap ``model`` for distributed training (``kiln.model.wrappers.wrap_model``): ``sync_bn='torch'``
    converts its BatchNorms to SyncBatchNorm, then ``wrapper_cfg`` (``model_wrapper_cfg``, built from
    MODEL_WRAPPERS with ``module=model``, e.g. ``dict(type='FSDP')``) or by default
    ``dict(type='KilnDistributedDataParallel', find_unused_parameters=...)``.
    Not distributed: ``model`` is returned unchanged."""
    from kiln.model.wrappers import wrap_model as _wrap
    return _wrap(model, distributed, wrapper_cfg, find_unused_parameters, sync_bn)


# --------------------------------------------------------------------------------------- optimizer
def build_optim_wrapper(model: nn.Module, cfg: Any) -> Any:
    """``kiln.optim.build_optim_wrapper(model, cfg)`` for a config (``type`` defaults to ``OptimWrapper``);
    a built optimizer wrapper is returned unchanged."""
    if not isinstance(cfg, dict):
        return cfg
    from kiln.optim import build_optim_wrapper as _build
    optim_wrapper = _build(unwrap_model(model), _plain(cfg))
    if hasattr(model, 'bind_optim_wrapper'):  # FSDP: full (gathered) optimizer states in checkpoints
        model.bind_optim_wrapper(optim_wrapper)
    return optim_wrapper


def scale_lr(optim_wrapper: Any, auto_scale_lr: dict | None, batch_size: int, world_size: int,
             logger: logging.Logger | None = None) -> float | None:
    """Linear scaling rule (Goyal et al., 2017): with ``auto_scale_lr=dict(enable=True, base_batch_size=B)``
    multiply every param group's ``lr`` by ``batch_size * world_size / B`` (total batch over the base one).
    Delegates to ``kiln.optim.scale_lr``.

    Returns:
        The ratio, or None when scaling is disabled.

    Raises:
        KeyError: ``enable=True`` without ``base_batch_size``.
    """
    from kiln.optim import scale_lr as _scale_lr
    return _scale_lr(optim_wrapper, auto_scale_lr, batch_size * world_size, logger)


# --------------------------------------------------------------------------------------- logging
def build_log_processor(cfg: Any, by_epoch: bool | None = None) -> Any:
    """Build the LogProcessor (default ``dict(type='LogProcessor')``); when the config does not set
    ``by_epoch``, it follows the train loop's (``by_epoch`` argument)."""
    if cfg is not None and not isinstance(cfg, dict):
        return cfg
    cfg = _plain(cfg or {})
    cfg.setdefault('type', 'LogProcessor')
    if by_epoch is not None:
        cfg.setdefault('by_epoch', by_epoch)
    return LOG_PROCESSORS.build(cfg)


def build_visualizer(cfg: Any, name: str, save_dir: str) -> Any:
    """Build the run's Visualizer (default: ``Visualizer`` with a ``LocalVisBackend``), with ``name`` and
    ``save_dir`` as defaults; a built visualizer is returned unchanged. On ranks other than 0 the visualizer
    gets no backends (only rank 0 writes scalars, images and the config)."""
    if cfg is not None and not isinstance(cfg, dict):
        return cfg
    cfg = _plain(cfg or dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]))
    from kiln.dist import is_main_process
    if not is_main_process():  # only rank 0 writes to the visualization backends
        cfg['vis_backends'] = None
    cfg.setdefault('type', 'Visualizer')
    cfg.setdefault('name', name)
    cfg.setdefault('save_dir', save_dir)
    return VISUALIZERS.build(cfg)
