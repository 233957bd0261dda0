"""SyncBuffersHook: average the model's buffers (e.g. BatchNorm running stats) over all ranks."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['SyncBuffersHook', 'all_reduce_buffers']


def all_reduce_buffers(module: Any) -> int:
    """All-reduce (mean) every floating-point buffer of ``module`` in place; integer buffers (e.g. BN's
    ``num_batches_tracked``) are left alone. Buffers are flattened into one tensor per dtype/device, so the
    cost is one collective per group. Returns the number of buffers reduced (0 when not distributed)."""
    import torch

    from kiln.dist import all_reduce, get_world_size
    if get_world_size() < 2:
        return 0
    groups: dict[tuple, list] = {}
    for buf in module.buffers():
        if buf.is_floating_point():
            groups.setdefault((buf.dtype, buf.device), []).append(buf)
    count = 0
    for bufs in groups.values():
        flat = torch.cat([b.detach().reshape(-1) for b in bufs])
        all_reduce(flat, op='mean')
        offset = 0
        for b in bufs:
            b.data.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()
        count += len(bufs)
    return count


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """Make the buffers identical on every rank after each training epoch and before each validation
    (MMEngine's ``SyncBuffersHook``): DDP broadcasts buffers from rank 0 only at forward time, and with
    ``broadcast_buffers=False`` each rank's BatchNorm statistics drift apart, so validation and checkpoints
    would depend on the rank. Buffers are averaged (``all_reduce`` mean). Not distributed: a no-op.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._synced_after_train_epoch = False

    def after_train_epoch(self, runner: Runner) -> None:
        all_reduce_buffers(runner.model)
        self._synced_after_train_epoch = True

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        self._synced_after_train_epoch = False

    def before_val_epoch(self, runner: Runner) -> None:
        # iteration-based loops validate mid-epoch: sync unless the epoch end just did it
        if not self._synced_after_train_epoch:
            all_reduce_buffers(runner.model)
