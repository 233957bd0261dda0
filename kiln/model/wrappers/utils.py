"""Helpers to recognise and strip kiln's model wrappers."""
from __future__ import annotations

import warnings
from typing import Any

from torch import nn

__all__ = ['is_model_wrapper', 'unwrap_model', 'needs_all_ranks_to_save', 'wrap_model', 'broadcast_module_state']


def is_model_wrapper(model: nn.Module) -> bool:
    """True for ``torch.nn.DataParallel`` / ``DistributedDataParallel`` (incl. kiln's), kiln's FSDP wrapper and
    any class that declares ``is_model_wrapper = True`` (all keep the wrapped model in ``.module``)."""
    from .fully_sharded import FullyShardedDataParallel
    return isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel, FullyShardedDataParallel)) or (
        getattr(type(model), 'is_model_wrapper', False) is True)


def unwrap_model(model: nn.Module, keep_sharded: bool = False) -> nn.Module:
    """The model inside every outer wrapper: DataParallel / DistributedDataParallel (torch's and kiln's), kiln's
    FSDP wrapper (``.module``; for FSDP this is the sharded model, its parameters are DTensor shards) and
    ``torch.compile``'s ``OptimizedModule`` (``._orig_mod``), in any nesting; ``model`` itself when unwrapped.
    The one unwrapping helper of kiln: checkpoints, optimizer building and weight initialisation all use it.

    Args:
        model: the (possibly wrapped) model.
        keep_sharded: stop at kiln's FSDP wrapper, whose ``state_dict()`` / ``load_state_dict()`` gather /
            scatter the full state (checkpoint I/O uses this).
    """
    from .fully_sharded import FullyShardedDataParallel
    while True:
        if keep_sharded and isinstance(model, FullyShardedDataParallel):
            return model
        if is_model_wrapper(model) and isinstance(getattr(model, 'module', None), nn.Module):
            model = model.module
        elif type(model).__name__ == 'OptimizedModule' and isinstance(getattr(model, '_orig_mod', None),
                                                                       nn.Module):
            model = model._orig_mod
        else:
            return model


def needs_all_ranks_to_save(model: nn.Module) -> bool:
    """True when building a checkpoint of ``model`` is a collective (FSDP: the shards are gathered), so every
    rank must call ``Runner.save_checkpoint`` and not only rank 0."""
    from .fully_sharded import FullyShardedDataParallel
    return isinstance(model, FullyShardedDataParallel)


def wrap_model(model: nn.Module, distributed: bool, wrapper_cfg: dict | None = None,
               find_unused_parameters: bool = False, sync_bn: str | None = None) -> nn.Module:
    """Prepare ``model`` (already on its device) for distributed training, as MMEngine's ``Runner.wrap_model``.

    Args:
        model: the model (a kiln ``BaseModel``).
        distributed: False returns ``model`` unchanged (no conversion, no wrapper).
        wrapper_cfg: ``model_wrapper_cfg``: a config built from ``MODEL_WRAPPERS`` with ``module=model``
            (e.g. ``dict(type='FSDP')`` or ``dict(type='MMDistributedDataParallel',
            find_unused_parameters=True)``). Default: ``dict(type='KilnDistributedDataParallel',
            find_unused_parameters=find_unused_parameters)`` with buffers synchronised at construction only
            (``forward_sync_buffers=False``, ``broadcast_buffers=False`` on older PyTorch), as MMEngine; add
            ``SyncBuffersHook`` to average BatchNorm statistics.
        find_unused_parameters: DDP option for models whose forward leaves some parameters unused (the
            config's top-level ``find_unused_parameters``).
        sync_bn: ``'torch'`` converts BatchNorm layers to ``nn.SyncBatchNorm`` first (the config's ``sync_bn``);
            on CPU (where PyTorch has no SyncBatchNorm) it warns and keeps the BatchNorm layers.

    Raises:
        ValueError: unknown ``sync_bn``. KeyError: unknown wrapper type (from the registry).
    """
    if not distributed:
        return model
    from kiln.registry import MODEL_WRAPPERS

    from .sync_bn import convert_sync_batchnorm
    if sync_bn is not None:
        param = next(model.parameters(), None)
        if param is not None and param.device.type == 'cpu':
            warnings.warn(f"sync_bn={sync_bn!r} ignored: PyTorch's SyncBatchNorm needs GPU modules (DDP refuses "
                          'it on CPU); training with the ordinary BatchNorm layers', stacklevel=2)
        else:
            model = convert_sync_batchnorm(model, sync_bn)
    cfg: dict[str, Any] = dict(wrapper_cfg) if wrapper_cfg is not None else dict(
        type='KilnDistributedDataParallel', find_unused_parameters=find_unused_parameters,
        **_no_forward_buffer_sync())
    return MODEL_WRAPPERS.build(cfg, default_args=dict(module=model))


def _no_forward_buffer_sync() -> dict[str, bool]:
    """DDP keyword that stops the buffer broadcast at every forward (renamed in recent PyTorch)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return dict(forward_sync_buffers=False) if 'forward_sync_buffers' in params else dict(broadcast_buffers=False)


def broadcast_module_state(module: nn.Module, src: int = 0) -> int:
    """Copy rank ``src``'s parameters and buffers to every rank, in place (after ``init_weights()``, which may
    draw different random numbers per rank with ``diff_rank_seed=True``; DDP only synchronises at
    construction). DTensor (FSDP) entries are skipped. Not distributed: a no-op.

    Returns:
        The number of tensors broadcast (0 when not distributed).
    """
    import torch

    from kiln.dist import broadcast, get_world_size
    if get_world_size() < 2:
        return 0
    count = 0
    with torch.no_grad():
        for tensor in module.state_dict(keep_vars=True).values():
            if isinstance(tensor, torch.Tensor) and type(tensor).__name__ != 'DTensor':
                broadcast(tensor.data if isinstance(tensor, nn.Parameter) else tensor, src=src)
                count += 1
    return count
