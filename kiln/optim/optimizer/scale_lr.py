"""Linear learning-rate scaling by batch size (``auto_scale_lr``)."""
from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any


def scale_lr(optim_wrapper: Any, auto_scale_lr: Mapping | None, real_batch_size: int,
             logger: logging.Logger | None = None) -> float | None:
    """Linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): multiply the learning rates by
    ``real_batch_size / auto_scale_lr['base_batch_size']``.

    As in MMEngine, ``real_batch_size`` is the total batch of one iteration: ``batch_size * world_size``
    (gradient accumulation is not counted, the Runner follows MMEngine here).

    Args:
        optim_wrapper: a built ``OptimWrapper`` / ``OptimWrapperDict`` (every param group's ``lr`` is scaled in
            place; call it before building the parameter schedulers, which record the initial lr), or an
            ``optim_wrapper`` config dict (``optimizer.lr`` is scaled in place; for an ``OptimWrapperDict``
            config, each sub-config's ``optimizer.lr``).
        auto_scale_lr: ``dict(enable=bool, base_batch_size=int)``; disabled when None or ``enable`` is false.
        real_batch_size: total samples per iteration.
        logger: where to log the ratio (INFO).

    Returns:
        The ratio, or None when scaling is disabled.

    Raises:
        KeyError: ``enable=True`` without ``base_batch_size``; a config without ``optimizer.lr``.
        ValueError: non-positive batch sizes.
    """
    if not auto_scale_lr or not auto_scale_lr.get('enable', False):
        return None
    if 'base_batch_size' not in auto_scale_lr:
        raise KeyError('auto_scale_lr: enable=True needs base_batch_size (the total batch size the learning '
                       'rate was tuned for)')
    base = auto_scale_lr['base_batch_size']
    if not base or base <= 0 or real_batch_size <= 0:
        raise ValueError(f'auto_scale_lr: batch sizes must be positive, got base_batch_size={base}, '
                         f'real batch size={real_batch_size}')
    ratio = float(real_batch_size) / float(base)
    if isinstance(optim_wrapper, MutableMapping):
        _scale_cfg(optim_wrapper, ratio)
    else:
        wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'optim_wrappers') else [optim_wrapper]
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group['lr'] = group['lr'] * ratio
    if logger is not None:
        logger.info(f'auto_scale_lr: total batch size {real_batch_size} vs base {base}: '
                    f'learning rates scaled by {ratio:g}')
    return ratio


def _scale_cfg(cfg: MutableMapping, ratio: float, key: str = 'optim_wrapper') -> None:
    if 'optimizer' not in cfg:
        subs = {k: v for k, v in cfg.items() if isinstance(v, MutableMapping) and 'optimizer' in v}
        if not subs:
            raise KeyError(f'auto_scale_lr: {key} config has no optimizer')
        for name, sub in subs.items():
            _scale_cfg(sub, ratio, f'{key}.{name}')
        return
    if 'lr' not in cfg['optimizer']:
        raise KeyError(f'auto_scale_lr: {key}.optimizer has no lr to scale')
    cfg['optimizer']['lr'] = cfg['optimizer']['lr'] * ratio
