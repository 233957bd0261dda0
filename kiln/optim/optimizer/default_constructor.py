"""``DefaultOptimWrapperConstructor``: optimizer + wrapper with per-parameter options (``paramwise_cfg``)."""
from __future__ import annotations

import copy
import functools
import inspect
import warnings
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from kiln.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

from .builder import to_plain
from .optim_wrapper import OptimWrapper

_PARAMWISE_KEYS = ('custom_keys', 'lr_mult', 'decay_mult', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
                   'dwconv_decay_mult', 'flat_decay_mult', 'bypass_duplicate', 'dcn_offset_lr_mult')
_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DefaultOptimWrapperConstructor:
    """Build the optimizer (optionally with per-parameter groups) and its wrapper.

    Args:
        optim_wrapper_cfg: ``dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=.., weight_decay=..),
            **wrapper kwargs)``.
        paramwise_cfg: per-parameter options (MMEngine semantics); each parameter becomes its own group:

            * ``custom_keys``: ``{substring: dict(lr_mult=.., decay_mult=.., **extra group options)}``;
              the longest substring found in the parameter's full name (``backbone.layer1.0.conv1.weight``)
              wins, and its options take precedence over all rules below.
            * ``lr_mult`` / ``decay_mult``: multipliers of every other parameter (combined with the rules below).
            * ``bias_lr_mult``: lr multiplier of biases (not of norm layers).
            * ``bias_decay_mult``: weight-decay multiplier of biases (not of norm layers).
            * ``norm_decay_mult``: weight-decay multiplier of BatchNorm/GroupNorm/LayerNorm/InstanceNorm params.
            * ``dwconv_decay_mult``: weight-decay multiplier of depth-wise conv parameters.
            * ``flat_decay_mult``: weight-decay multiplier of 1-D parameters.

            The decay rules are exclusive and tried in MMEngine's order: norm, bias, depth-wise conv, flat.
            * ``bypass_duplicate``: skip parameters shared by several modules (else the optimizer errors).
            * ``dcn_offset_lr_mult``: accepted for config compatibility; kiln has no deformable convs.

    Raises:
        TypeError: config sections are not dicts / ``custom_keys`` not a dict.
        KeyError: ``optimizer`` missing, or an unknown ``paramwise_cfg`` key.
        ValueError: a decay multiplier is given but the optimizer has no ``weight_decay``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(f'optim_wrapper_cfg must be a dict, got {type(optim_wrapper_cfg).__name__}')
        if 'optimizer' not in optim_wrapper_cfg:
            raise KeyError("optim_wrapper config needs an 'optimizer' key, e.g. optimizer=dict(type='SGD', lr=0.01)")
        self.optim_wrapper_cfg = to_plain(optim_wrapper_cfg)
        self.optimizer_cfg = self.optim_wrapper_cfg.pop('optimizer')
        self.paramwise_cfg = to_plain(paramwise_cfg) or {}
        self.base_lr = self.optimizer_cfg.get('lr')
        self.base_wd = self.optimizer_cfg.get('weight_decay')
        self._validate()

    def _validate(self) -> None:
        unknown = set(self.paramwise_cfg) - set(_PARAMWISE_KEYS)
        if unknown:
            raise KeyError(f'paramwise_cfg: unknown keys {sorted(unknown)}; valid keys are {list(_PARAMWISE_KEYS)}')
        custom = self.paramwise_cfg.get('custom_keys', {})
        if not isinstance(custom, dict):
            raise TypeError(f'paramwise_cfg.custom_keys must be a dict, got {type(custom).__name__}')
        if self.base_wd is None:
            for key in ('decay_mult', 'bias_decay_mult', 'norm_decay_mult', 'dwconv_decay_mult', 'flat_decay_mult'):
                if key in self.paramwise_cfg:
                    raise ValueError(f'paramwise_cfg.{key} needs optimizer.weight_decay to be set')
            for name, opts in custom.items():
                if 'decay_mult' in opts:
                    raise ValueError(f'paramwise_cfg.custom_keys[{name!r}].decay_mult needs '
                                     'optimizer.weight_decay to be set')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Return the wrapper around an optimizer of ``model``'s parameters (``model.module`` for DDP)."""
        if hasattr(model, 'module') and isinstance(model.module, nn.Module):
            model = model.module
        optimizer_cfg = copy.deepcopy(self.optimizer_cfg)
        opt_type = optimizer_cfg['type']
        opt_cls = OPTIMIZERS.get(opt_type) if isinstance(opt_type, str) else opt_type
        if opt_cls is None:
            raise KeyError(f'optimizer type {opt_type!r} is not registered in OPTIMIZERS')
        first_arg = _first_parameter(opt_cls)
        if self.paramwise_cfg:
            params: list[dict] = []
            self.add_params(params, model)
            optimizer_cfg[first_arg] = params
        else:
            optimizer_cfg[first_arg] = model.parameters()
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        wrapper_cfg = copy.deepcopy(self.optim_wrapper_cfg)
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = '') -> None:
        """Append one param group per parameter of ``module`` (recursively) to ``params``."""
        cfg = self.paramwise_cfg
        custom = cfg.get('custom_keys', {})
        sorted_keys = sorted(sorted(custom), key=len, reverse=True)
        lr_mult = cfg.get('lr_mult', 1.0)
        decay_mult = cfg.get('decay_mult', 1.0)
        bias_lr_mult = cfg.get('bias_lr_mult')
        bias_decay_mult = cfg.get('bias_decay_mult')
        norm_decay_mult = cfg.get('norm_decay_mult')
        dwconv_decay_mult = cfg.get('dwconv_decay_mult')
        flat_decay_mult = cfg.get('flat_decay_mult')
        bypass_duplicate = cfg.get('bypass_duplicate', False)
        is_norm = isinstance(module, _NORMS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups

        for name, param in module.named_parameters(recurse=False):
            full_name = f'{prefix}.{name}' if prefix else name
            group: dict[str, Any] = {'params': [param]}
            if bypass_duplicate and any(param is p for g in params for p in g['params']):
                warnings.warn(f'{full_name} is shared with another module and was skipped '
                              '(paramwise_cfg.bypass_duplicate=True)', stacklevel=2)
                continue
            if not param.requires_grad:
                params.append(group)
                continue
            key = next((k for k in sorted_keys if k in full_name), None)
            if key is not None:
                opts = custom[key]
                if self.base_lr is not None:
                    group['lr'] = self.base_lr * opts.get('lr_mult', 1.0)
                if self.base_wd is not None:
                    group['weight_decay'] = self.base_wd * opts.get('decay_mult', 1.0)
                for k, v in opts.items():
                    if k not in ('lr_mult', 'decay_mult'):
                        group[k] = v
            else:
                lr_m = lr_mult
                if name == 'bias' and not is_norm and bias_lr_mult is not None:
                    lr_m *= bias_lr_mult
                if self.base_lr is not None and lr_m != 1.0:
                    group['lr'] = self.base_lr * lr_m
                if self.base_wd is not None:
                    wd_m = decay_mult
                    if is_norm and norm_decay_mult is not None:
                        wd_m *= norm_decay_mult
                    elif name == 'bias' and bias_decay_mult is not None:
                        wd_m *= bias_decay_mult
                    elif is_dwconv and dwconv_decay_mult is not None:
                        wd_m *= dwconv_decay_mult
                    elif flat_decay_mult is not None and param.ndim == 1:
                        wd_m *= flat_decay_mult
                    if wd_m != 1.0:
                        group['weight_decay'] = self.base_wd * wd_m
            params.append(group)

        for child_name, child in module.named_children():
            self.add_params(params, child, f'{prefix}.{child_name}' if prefix else child_name)


@functools.lru_cache(maxsize=None)
def _first_parameter(opt_cls: Any) -> str:
    """Name of the first parameter of the optimizer class (``params`` for torch's), read once per class:
    ``inspect.signature`` takes tens of microseconds, once per ``train()``."""
    return next(iter(inspect.signature(opt_cls).parameters))
