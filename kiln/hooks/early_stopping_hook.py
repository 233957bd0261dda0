"""EarlyStoppingHook: stop training when a validation metric stops improving."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['EarlyStoppingHook']


@HOOKS.register_module()
class EarlyStoppingHook(Hook):
    """Set ``runner.train_loop.stop_training`` when ``monitor`` has not improved by more than ``min_delta``
    for ``patience`` validations in a row (MMEngine's EarlyStoppingHook). The loop stops at the end of the
    current epoch (epoch-based) or iteration (iteration-based).

    Args:
        monitor: metric key, e.g. ``'coco/bbox_mAP'`` or ``'accuracy'``.
        rule: ``'greater'`` or ``'less'``; None infers ``'less'`` for keys containing ``'loss'``, else greater.
        min_delta: smallest change counted as an improvement (in the metric's unit).
        strict: raise when ``monitor`` is missing from the metrics (False: warn and skip that validation).
        patience: validations without improvement before stopping (>= 1).
        check_finite: stop at once if the metric is NaN or infinite.
        stopping_threshold: stop as soon as the metric is better than this value.

    Only validations run during ``Runner.train`` count. ``state_dict()`` holds the best score and the number of
    validations without improvement, so a resumed run keeps counting.

    Raises:
        ValueError: invalid ``rule`` or ``patience``. KeyError: ``monitor`` missing from the metrics (``strict``).
    """

    priority = 'LOWEST'

    def __init__(self, monitor: str, rule: str | None = None, min_delta: float = 0.1, strict: bool = False,
                 check_finite: bool = True, patience: int = 5, stopping_threshold: float | None = None) -> None:
        if rule is None:
            rule = 'less' if 'loss' in monitor.lower() else 'greater'
        if rule not in ('greater', 'less'):
            raise ValueError(f"EarlyStoppingHook: rule must be 'greater' or 'less', got {rule!r}")
        if patience < 1:
            raise ValueError(f'EarlyStoppingHook: patience must be >= 1, got {patience}')
        self.monitor = monitor
        self.strict = strict
        self.rule = rule
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.best_score: float | None = None
        self.wait_count = 0
        self._training = False

    def state_dict(self) -> dict:
        return dict(best_score=self.best_score, wait_count=self.wait_count)

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score = state_dict.get('best_score')
        self.wait_count = int(state_dict.get('wait_count', 0))

    def before_run(self, runner: Runner) -> None:
        self.best_score, self.wait_count = None, 0

    def before_train(self, runner: Runner) -> None:
        self._training = True

    def after_train(self, runner: Runner) -> None:
        self._training = False

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.rule == 'greater' else a < b

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if not self._training or not metrics:
            return
        if self.monitor not in metrics:
            if not self.strict:
                runner.logger.warning(f'EarlyStoppingHook: monitor={self.monitor!r} is not one of the validation '
                                      f'metrics {sorted(metrics)}; this validation is skipped (strict=True raises)')
                return
            raise KeyError(f'EarlyStoppingHook: monitor={self.monitor!r} is not one of the validation metrics '
                           f'{sorted(metrics)}')
        score = float(metrics[self.monitor])
        reason = None
        if self.check_finite and not math.isfinite(score):
            reason = f'{self.monitor} is {score}'
        elif self.stopping_threshold is not None and self._better(score, self.stopping_threshold):
            reason = f'{self.monitor} = {score:.4f} reached the stopping threshold {self.stopping_threshold}'
        else:
            delta = self.min_delta if self.rule == 'greater' else -self.min_delta
            if self.best_score is None or self._better(score, self.best_score + delta):
                self.best_score, self.wait_count = score, 0
            else:
                self.wait_count += 1
                if self.wait_count >= self.patience:
                    reason = (f'{self.monitor} did not improve by more than {self.min_delta} on the best '
                              f'{self.best_score:.4f} for {self.patience} validations')
        if reason is not None:
            runner.train_loop.stop_training = True
            runner.logger.info(f'Early stopping: {reason}')
