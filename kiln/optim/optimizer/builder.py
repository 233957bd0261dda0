"""Register ``torch.optim`` optimizers and build optimizer wrappers from config."""
from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kiln.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS

from .optim_wrapper import OptimWrapper


def register_torch_optimizers() -> list[str]:
    """Register every optimizer class of ``torch.optim`` (SGD, Adam, AdamW, ...) in ``OPTIMIZERS``."""
    names = []
    for name, obj in vars(torch.optim).items():
        if (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
                and obj is not torch.optim.Optimizer and not name.startswith('_')):
            OPTIMIZERS.register_module(name=name)(obj)
            names.append(name)
    return names


TORCH_OPTIMIZERS = register_torch_optimizers()


def to_plain(cfg: Any) -> Any:
    """Recursively turn mappings (e.g. ``ConfigDict``) into plain dicts and lists/tuples into lists/tuples."""
    if isinstance(cfg, Mapping):
        return {k: to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [to_plain(v) for v in cfg]
    if isinstance(cfg, tuple):
        return tuple(to_plain(v) for v in cfg)
    return cfg


def build_optim_wrapper(model: nn.Module, cfg: dict) -> OptimWrapper:
    """Build an optimizer wrapper for ``model`` from the ``optim_wrapper`` config section.

    Three forms, as in MMEngine's Runner:

    * ``dict(type='OptimWrapper' | 'AmpOptimWrapper' | ..., optimizer=dict(type='SGD', lr=..), clip_grad=..,
      accumulative_counts=.., constructor='DefaultOptimWrapperConstructor', paramwise_cfg=..)``: the
      constructor (from ``OPTIM_WRAPPER_CONSTRUCTORS``) builds the optimizer, then the wrapper. A custom
      ``constructor`` may build anything (e.g. an ``OptimWrapperDict``) from the remaining keys.
    * ``optimizer`` is an already built ``torch.optim.Optimizer``: the wrapper is built around it.
    * no ``optimizer`` and no ``constructor``: every value must be a built ``OptimWrapper``; they are
      gathered in an ``OptimWrapperDict`` (several optimizers, e.g. a GAN).

    Raises:
        TypeError: ``cfg`` is not a dict.
        ValueError: neither ``optimizer`` nor ``constructor``, and a value is not an ``OptimWrapper``.
        KeyError: unknown types (from the registries).
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f'optim_wrapper config must be a dict, got {type(cfg).__name__}')
    from kiln.registry import OPTIM_WRAPPERS
    optimizer = cfg.get('optimizer')
    if isinstance(optimizer, torch.optim.Optimizer):
        cfg = dict(cfg)
        cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(cfg)
    if optimizer is None and 'constructor' not in cfg:
        bad = [k for k, v in cfg.items() if not isinstance(v, OptimWrapper)]
        if bad:
            raise ValueError(f'optim_wrapper: without optimizer= or constructor=, every value must be a built '
                             f'OptimWrapper (several optimizers -> OptimWrapperDict); got {bad} '
                             f'(e.g. optimizer=dict(type=\'SGD\', lr=0.01))')
        from .optim_wrapper_dict import OptimWrapperDict
        return OptimWrapperDict(**cfg)
    cfg = copy.deepcopy(to_plain(cfg))
    constructor = cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
    paramwise_cfg = cfg.pop('paramwise_cfg', None)
    built = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=constructor, optim_wrapper_cfg=cfg,
                                                  paramwise_cfg=paramwise_cfg))
    return built(model)
