"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP): every rank writes its own shards.

A full (gathered) checkpoint of a large FSDP model costs rank 0 the whole model and optimizer in memory and one
writer's bandwidth. A sharded checkpoint is a directory (``iter_1000.dcp/``) in which every rank writes the
shards it owns, in parallel, and which can be read back by any number of ranks, with any sharding (DCP reshards
on load: save on N ranks, resume on M, including M = 1 without a process group).

Layout of ``<name>.dcp/``:
    ``.metadata`` and ``__<rank>_<n>.distcp``: DCP's files for ``{'model': model state, 'optimizer': optimizer
    state}`` (FQN keys, from ``torch.distributed.checkpoint.state_dict.get_state_dict``);
    ``extra.pth``: everything else kiln keeps in a checkpoint (``meta``, ``param_schedulers``, ``message_hub``,
    ``hooks``, RNG states...), plain data written by rank 0 and read with ``torch.load(weights_only=True)``.
The directory is written as ``<name>.dcp.tmp`` and renamed by rank 0 after every rank finished (a barrier), so a
crash mid-save never leaves a half-written directory under the final name.

:func:`consolidate_sharded_checkpoint` turns such a directory into one ordinary kiln ``.pth`` (``meta`` +
``state_dict``) for publishing or for ``load_from`` in a run without DCP.

Reference: PyTorch ``torch.distributed.checkpoint`` (``save``, ``load``, ``state_dict.get_state_dict`` /
``set_state_dict``, ``format_utils.dcp_to_torch_save``).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

__all__ = ['consolidate_sharded_checkpoint', 'is_sharded_checkpoint', 'load_sharded_checkpoint',
           'save_sharded_checkpoint']

_EXTRA = 'extra.pth'


def _dist() -> tuple[bool, int]:
    import torch.distributed as dist
    on = dist.is_available() and dist.is_initialized()
    return on, (dist.get_rank() if on else 0)


def _barrier() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _inner(model: nn.Module) -> nn.Module:
    """The module DCP should see: kiln's DDP/FSDP wrappers keep the user model in ``.module``."""
    while hasattr(model, 'module') and isinstance(model.module, nn.Module):
        model = model.module
    return model


def _optimizers(optimizers: Any) -> list[torch.optim.Optimizer]:
    """Accept an optimizer, an OptimWrapper, an OptimWrapperDict, or a sequence of them."""
    if optimizers is None:
        return []
    if isinstance(optimizers, torch.optim.Optimizer):
        return [optimizers]
    if hasattr(optimizers, 'optim_wrappers'):  # OptimWrapperDict
        return [w.optimizer for w in optimizers.optim_wrappers.values()]
    if hasattr(optimizers, 'optimizer'):
        return [optimizers.optimizer]
    if isinstance(optimizers, Sequence):
        return [o for item in optimizers for o in _optimizers(item)]
    raise TypeError(f'expected an optimizer or OptimWrapper, got {type(optimizers).__name__}')


@contextmanager
def _class_methods(optimizers: list[torch.optim.Optimizer]) -> Iterator[None]:
    """Hide instance-level ``state_dict``/``load_state_dict`` overrides (kiln's FSDP wrapper installs full-state
    ones) so DCP sees the optimizers' own sharded states."""
    saved = []
    for opt in optimizers:
        saved.append({k: opt.__dict__.pop(k) for k in ('state_dict', 'load_state_dict') if k in opt.__dict__})
    try:
        yield
    finally:
        for opt, methods in zip(optimizers, saved):
            opt.__dict__.update(methods)


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory written by :func:`save_sharded_checkpoint`."""
    p = Path(path)
    return p.is_dir() and (p / '.metadata').is_file() and (p / _EXTRA).is_file()


def save_sharded_checkpoint(checkpoint_dir: str | os.PathLike, model: nn.Module, optimizers: Any = None,
                            extra: dict | None = None) -> str:
    """Write a sharded checkpoint. A collective: every rank of the process group must call it.

    Args:
        checkpoint_dir: the directory to create (conventionally ``<work_dir>/iter_<n>.dcp``); an existing one is
            replaced.
        model: the model (kiln DDP/FSDP wrappers are unwrapped; FSDP2 DTensor parameters are saved as shards).
        optimizers: optimizer(s) or OptimWrapper(s) over ``model``'s parameters, or None.
        extra: the non-tensor remainder of the checkpoint (``meta``, ``param_schedulers``, ``message_hub``...),
            plain data only; written by rank 0.

    Returns:
        ``checkpoint_dir`` as a string.

    Raises:
        TypeError: ``optimizers`` of an unknown kind.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    final = Path(checkpoint_dir)
    tmp = final.with_name(final.name + '.tmp')
    _, rank = _dist()
    opts = _optimizers(optimizers)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    with _class_methods(opts):
        model_state, optim_state = get_state_dict(_inner(model), opts)
    dcp.save({'model': model_state, 'optimizer': optim_state}, checkpoint_id=str(tmp), no_dist=not _dist()[0])
    if rank == 0:
        torch.save(dict(extra or {}), tmp / _EXTRA)
    _barrier()
    if rank == 0:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    _barrier()
    return str(final)


def load_sharded_checkpoint(checkpoint_dir: str | os.PathLike, model: nn.Module, optimizers: Any = None,
                            strict: bool = True) -> dict:
    """Load a sharded checkpoint into ``model`` (and ``optimizers``) with the current sharding.

    Works with any number of ranks, including one process without a process group (DCP reshards).

    Args:
        checkpoint_dir: a directory written by :func:`save_sharded_checkpoint`.
        model, optimizers: as for :func:`save_sharded_checkpoint`, built like the saved ones.
        strict: raise on missing or unexpected model keys.

    Returns:
        The ``extra`` dict that was saved with it.

    Raises:
        FileNotFoundError: ``checkpoint_dir`` is not a sharded checkpoint (named in the message).
        RuntimeError: from DCP when keys or shapes do not fit (``strict``).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    path = Path(checkpoint_dir)
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(f"'{path}' is not a sharded kiln checkpoint (expected a directory with "
                                f"'.metadata' and '{_EXTRA}', written by save_sharded_checkpoint)")
    opts = _optimizers(optimizers)
    inner = _inner(model)
    with _class_methods(opts):
        model_state, optim_state = get_state_dict(inner, opts)
        state = {'model': model_state}
        if opts:
            state['optimizer'] = optim_state
        dcp.load(state, checkpoint_id=str(path), no_dist=not _dist()[0])
        set_state_dict(inner, opts, model_state_dict=state['model'],
                       optim_state_dict=state.get('optimizer', {}),
                       options=StateDictOptions(strict=strict))
    return torch.load(path / _EXTRA, map_location='cpu', weights_only=True)


def consolidate_sharded_checkpoint(checkpoint_dir: str | os.PathLike, out_file: str | os.PathLike) -> str:
    """Gather a sharded checkpoint into one kiln checkpoint file ``dict(meta=..., state_dict=...)`` (model
    weights only; for publishing or ``load_from``). Runs in one process, without a process group.

    Raises:
        FileNotFoundError: ``checkpoint_dir`` is not a sharded checkpoint.
    """
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    path = Path(checkpoint_dir)
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(f"'{path}' is not a sharded kiln checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        whole_file = Path(tmp) / 'whole.pt'
        dcp_to_torch_save(str(path), str(whole_file))
        whole = torch.load(whole_file, map_location='cpu', weights_only=True)
    extra = torch.load(path / _EXTRA, map_location='cpu', weights_only=True)
    checkpoint = dict(meta=extra.get('meta', {}), state_dict=whole['model'])
    out = Path(out_file)
    tmp_out = out.with_name(out.name + '.tmp')
    torch.save(checkpoint, tmp_out)
    os.replace(tmp_out, out)
    return str(out)
