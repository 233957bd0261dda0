"""CheckInvalidLossHook: stop training when the loss becomes NaN or infinite."""
from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['CheckInvalidLossHook']


@HOOKS.register_module()
class CheckInvalidLossHook(Hook):
    """Every ``interval`` training iterations (and at the last one), check that the loss terms returned by
    ``train_step`` are finite; if not, raise ``FloatingPointError`` naming the iteration (1-based) and each
    term that is NaN / inf (MMEngine's ``CheckInvalidLossHook``, which asserts on ``outputs['loss']`` only).

    All 0-dim tensor outputs are stacked and checked with one ``isfinite().all()``: one device sync per
    ``interval`` iterations. A NaN that appears between two checks is caught at the next one (NaN weights keep
    producing NaN losses), naming the iteration of the check.

    Args:
        interval: check every this many iterations (>= 1).

    Raises:
        ValueError: ``interval`` < 1.
        FloatingPointError: (during training) a loss term is NaN or infinite.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 50) -> None:
        if interval < 1:
            raise ValueError(f'CheckInvalidLossHook: interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if not outputs or not (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            return
        import torch
        terms = {k: v for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        if not terms:
            return
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
        if bool(torch.isfinite(values).all()):
            return
        bad = ', '.join(f'{k}={v}' for k, v in zip(terms, values.tolist()) if not math.isfinite(v))
        msg = (f'CheckInvalidLossHook: loss became infinite or NaN at iteration {runner.iter + 1} '
               f'(epoch {runner.epoch + 1}): {bad}. Lower the learning rate, enable gradient clipping '
               '(optim_wrapper.clip_grad) or check the data of this batch.')
        runner.logger.error(msg)
        raise FloatingPointError(msg)
