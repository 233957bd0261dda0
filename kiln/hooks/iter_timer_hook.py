"""IterTimerHook: iteration and data-loading times, and the estimated time left."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['IterTimerHook']


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Record per-iteration wall times in the message hub (MMEngine's IterTimerHook).

    Scalars, in seconds (``time.perf_counter``; no device synchronisation, so on GPU ``time`` measures the host
    side of the step): ``{mode}/data_time`` (waiting for the dataloader) and ``{mode}/time`` (the whole
    iteration, data included) for mode ``train``/``val``/``test``. Info ``eta``: seconds left in training
    (mean train iteration time since this run's first iteration times the iterations left), or in the current
    val/test epoch during evaluation.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._start_iter = 0
        self._train_time = 0.0
        self._eval_time = 0.0
        self._max_iters = 0
        self._done = 0
        self._eval_len = 0

    def before_train(self, runner: Runner) -> None:
        self._start_iter = runner.iter
        self._train_time = 0.0
        self._done = 0
        self._max_iters = runner.max_iters

    def _before_epoch(self, runner: Runner, mode: str = 'train') -> None:
        self._t = time.perf_counter()
        if mode != 'train':
            self._eval_time = 0.0
            self._eval_len = len(runner.val_dataloader if mode == 'val' else runner.test_dataloader)

    # the train iterations are the hot path: direct methods, no generic forwarding, nothing looked up twice
    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        runner.message_hub.update_scalar('train/data_time', time.perf_counter() - self._t)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        now = time.perf_counter()
        iter_time = now - self._t
        self._t = now
        hub = runner.message_hub
        hub.update_scalar('train/time', iter_time)
        self._train_time += iter_time
        self._done += 1  # iterations timed in this run (runner.iter - start_iter + 1, without the lookups)
        left = self._max_iters - self._start_iter - self._done
        hub.update_info('eta', self._train_time / self._done * left if left > 0 else 0.0)

    def _before_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, mode: str = 'train') -> None:
        runner.message_hub.update_scalar(f'{mode}/data_time', time.perf_counter() - self._t)

    def _after_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None,
                    mode: str = 'train') -> None:
        now = time.perf_counter()
        iter_time = now - self._t
        self._t = now
        hub = runner.message_hub
        hub.update_scalar(f'{mode}/time', iter_time)
        self._eval_time += iter_time
        left = self._eval_len - batch_idx - 1
        hub.update_info('eta', self._eval_time / (batch_idx + 1) * max(left, 0))
