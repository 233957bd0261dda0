"""Quadratic warm-up: the value grows as ``base * ((t + 1) / T)^2`` over the ``T = end - begin`` steps of the window.

Used by YOLOX-style recipes (``dict(type='QuadraticWarmupLR', by_epoch=True, begin=0, end=5,
convert_to_iter_based=True)``). Written in the chainable, additive form of MMEngine's scheduler (each step adds
``base * (2t + 1) / T^2``), so a later scheduler can take over from the value this one reached.

Reference: MMEngine ``QuadraticWarmupParamScheduler`` (behaviour; originally YOLOX, Ge et al. 2021), re-implemented.
"""
from __future__ import annotations

from typing import Any

from kiln.registry import PARAM_SCHEDULERS

from .lr_scheduler import LRSchedulerMixin
from .momentum_scheduler import MomentumSchedulerMixin
from .param_scheduler import INF, _ParamScheduler


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupParamScheduler(_ParamScheduler):
    """Warm ``param_name`` up quadratically from ``base / T^2`` (first step) to ``base`` (step ``end - 1``).

    Args:
        optimizer, param_name, begin, last_step, by_epoch, verbose: see ``_ParamScheduler``.
        end: the step at which the warm-up is over; must be finite.

    Raises:
        ValueError: ``end`` is not finite (the length of the warm-up must be known), or ``end <= begin``.
    """

    def __init__(self, optimizer: Any, param_name: str, begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False) -> None:
        if end >= INF:
            raise ValueError(f'{type(self).__name__}: set end to the step where the warm-up ends (got end=INF)')
        self.total_iters = end - begin
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        increment = (2 * self.last_step + 1) / self.total_iters ** 2
        if self.last_step == 0:
            return [base * increment for base in self.base_values]
        return [value + base * increment for value, base in zip(self._current(), self.base_values)]


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupLR(LRSchedulerMixin, QuadraticWarmupParamScheduler):
    """``QuadraticWarmupParamScheduler`` on ``lr``."""


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupMomentum(MomentumSchedulerMixin, QuadraticWarmupParamScheduler):
    """``QuadraticWarmupParamScheduler`` on ``momentum`` (``betas[0]`` for Adam-type optimizers)."""
