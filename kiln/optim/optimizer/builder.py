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

    ``cfg``: ``dict(type='OptimWrapper' | 'AmpOptimWrapper' | ..., optimizer=dict(type='SGD', lr=..),
    clip_grad=.., accumulative_counts=.., constructor='DefaultOptimWrapperConstructor', paramwise_cfg=..)``.
    The constructor (from ``OPTIM_WRAPPER_CONSTRUCTORS``) builds the optimizer, then the wrapper.

    Raises:
        TypeError: ``cfg`` is not a dict.
        KeyError: ``optimizer`` missing, unknown types (from the registries).
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f'optim_wrapper config must be a dict, got {type(cfg).__name__}')
    cfg = copy.deepcopy(to_plain(cfg))
    constructor = cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
    paramwise_cfg = cfg.pop('paramwise_cfg', None)
    built = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=constructor, optim_wrapper_cfg=cfg,
                                                  paramwise_cfg=paramwise_cfg))
    return built(model)
