"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017) with MMEngine's ``periods`` /
``restart_weights`` arguments. Reference: MMEngine ``CosineRestartParamScheduler`` (behaviour)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from kiln.registry import PARAM_SCHEDULERS

from .lr_scheduler import LRSchedulerMixin
from .momentum_scheduler import MomentumSchedulerMixin
from .param_scheduler import INF, _ParamScheduler


@PARAM_SCHEDULERS.register_module()
class CosineRestartParamScheduler(_ParamScheduler):
    """Cosine annealing restarted at the end of every period.

    Period ``i`` (``periods[i]`` steps) starts at ``base * restart_weights[i]`` and follows a cosine down
    towards ``eta_min`` (reached one step after the period ends, where the next period restarts). After the
    last period the value is left unchanged.

    Args:
        optimizer, param_name, begin, end, last_step, by_epoch, verbose: see ``_ParamScheduler``.
        periods: length of each cycle in steps (epochs or iterations).
        restart_weights: value multiplier at the start of each cycle (same length as ``periods``).
        eta_min: minimum value; or ``eta_min_ratio``: minimum as a fraction of the initial value (default
            ``eta_min=0``).

    Raises:
        ValueError: ``periods`` and ``restart_weights`` differ in length, a period < 1, both ``eta_min`` and
            ``eta_min_ratio`` given.
    """

    _STEP_ARGS = ('periods',)

    def __init__(self, optimizer: Any, param_name: str, periods: Sequence[int],
                 restart_weights: Sequence[float] = (1,), eta_min: float | None = None,
                 eta_min_ratio: float | None = None, begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False) -> None:
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError(f'{type(self).__name__}: give eta_min or eta_min_ratio, not both')
        periods = [int(p) for p in periods]
        if len(periods) != len(restart_weights):
            raise ValueError(f'{type(self).__name__}: periods ({len(periods)}) and restart_weights '
                             f'({len(restart_weights)}) must have the same length')
        if any(p < 1 for p in periods):
            raise ValueError(f'{type(self).__name__}: every period must be >= 1, got {periods}')
        self.periods = periods
        self.restart_weights = list(restart_weights)
        self.eta_min = 0.0 if eta_min is None and eta_min_ratio is None else eta_min
        self.eta_min_ratio = eta_min_ratio
        self.cumulative_periods = [sum(periods[:i + 1]) for i in range(len(periods))]
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        idx = next((i for i, c in enumerate(self.cumulative_periods) if self.last_step < c), None)
        if idx is None:
            return self._current()
        weight = self.restart_weights[idx]
        start = 0 if idx == 0 else self.cumulative_periods[idx - 1]
        period = self.periods[idx]
        t = self.last_step - start
        out = []
        for v, base in zip(self._current(), self.base_values):
            lo = base * self.eta_min_ratio if self.eta_min_ratio is not None else self.eta_min
            if t == 0:
                out.append(base * weight)
            else:
                out.append((1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
                           * (v - lo) + lo)
        return out


@PARAM_SCHEDULERS.register_module()
class CosineRestartLR(LRSchedulerMixin, CosineRestartParamScheduler):
    """``CosineRestartParamScheduler`` on ``lr``: ``dict(type='CosineRestartLR', periods=[5, 10],
    restart_weights=[1, 0.5], eta_min=1e-5)``."""


@PARAM_SCHEDULERS.register_module()
class CosineRestartMomentum(MomentumSchedulerMixin, CosineRestartParamScheduler):
    """``CosineRestartParamScheduler`` on momentum (``betas[0]`` for Adam-like optimizers)."""
