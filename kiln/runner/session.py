"""Pure helpers behind the Runner's reuse across experiments (active learning, notebooks):
``runner.reset_model()``, ``runner.set_dataloader(split, data)``, ``runner.new_session(name)`` and the
``work_dir`` / ``log_dir`` setters. They compute; the Runner assigns its own attributes.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any

from torch import nn

from kiln.model.wrappers.utils import unwrap_model

__all__ = ['SPLITS', 'reinit_module', 'rebind_optimizer', 'dataloader_source', 'session_stamp',
           'visualizer_source']

SPLITS = ('train', 'val', 'test')


def reinit_module(model: nn.Module) -> None:
    """Re-initialise ``model`` in place: ``reset_parameters()`` of every sub-module that has one, and
    ``is_init = False`` where present (so ``init_weights()`` applies ``init_cfg`` again)."""
    for module in unwrap_model(model).modules():
        if hasattr(module, 'reset_parameters') and callable(module.reset_parameters):
            module.reset_parameters()
        if hasattr(module, 'is_init'):
            module.is_init = False


def rebind_optimizer(optim_wrapper: Any, model: nn.Module) -> Any:
    """Give a built optimizer wrapper a new optimizer of the same class and defaults over ``model``'s
    parameters (the old one points at parameters of a model that is gone); returns the wrapper."""
    old = optim_wrapper.optimizer
    optim_wrapper.optimizer = type(old)(unwrap_model(model).parameters(), **old.defaults)
    return optim_wrapper


def dataloader_source(old: Any, split: str, data: Any) -> Any:
    """What ``set_dataloader(split, data)`` stores as the new dataloader source of ``split``.

    ``data`` may be a ``DataLoader`` (used as is), a full dataloader config (a dict with ``dataset``), or a
    dataset / dataset config (a dict with ``type``), which replaces the ``dataset`` of the current dataloader
    config ``old`` (batch size, sampler, workers and collate function are kept; a dataloader given as an object
    lends its ``batch_size``, ``num_workers`` and ``collate_fn``).

    Raises:
        ValueError: ``split`` is not 'train', 'val' or 'test'.
        TypeError: ``data`` is none of the above.
    """
    if split not in SPLITS:
        raise ValueError(f"set_dataloader: split must be one of {SPLITS}, got {split!r}")
    if _is_loader(data) or (isinstance(data, dict) and 'dataset' in data):
        return data
    if isinstance(data, dict) and 'type' in data or _is_dataset(data):
        new = _loader_cfg(old, split)
        new['dataset'] = data
        return new
    raise TypeError(f"set_dataloader('{split}'): expected a DataLoader, a dataloader config (dict with "
                    f"'dataset'), a dataset or a dataset config (dict with 'type'), got {type(data).__name__}")


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


def session_stamp(stamp: str, old_stamp: str, work_dir: str, has_log_dir: bool) -> str:
    """The timestamp of a new session: ``stamp``, suffixed ``_1``, ``_2``... when it equals the current one or
    ``work_dir/<stamp>`` exists (two sessions in the same second), unless the caller chose the log dir."""
    if has_log_dir:
        return stamp
    n, base = 1, stamp
    while stamp == old_stamp or osp.exists(osp.join(work_dir, stamp)):
        stamp, n = f'{base}_{n}', n + 1
    return stamp


def visualizer_source(vis: Any) -> Any:
    """The visualizer config of a new session: the given config, or for a built visualizer a new one of its
    class and backend classes (default ``LocalVisBackend``)."""
    if vis is not None and not isinstance(vis, dict):
        backends = [dict(type=type(b)) for b in getattr(vis, '_vis_backends', {}).values()]
        vis = dict(type=type(vis), vis_backends=backends or [dict(type='LocalVisBackend')])
    return vis
