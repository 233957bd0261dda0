"""1cycle policy (Smith & Topin 2017, "Super-Convergence"). Reference: MMEngine ``OneCycleParamScheduler`` and
``torch.optim.lr_scheduler.OneCycleLR`` (same phases; momentum cycling is not part of it, see below)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from kiln.registry import PARAM_SCHEDULERS

from .lr_scheduler import LRSchedulerMixin
from .param_scheduler import INF, _ParamScheduler


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


@PARAM_SCHEDULERS.register_module()
class OneCycleParamScheduler(_ParamScheduler):
    """Rise from ``eta_max / div_factor`` to ``eta_max`` over the first ``pct_start`` of ``total_steps``, then
    anneal to ``eta_max / (div_factor * final_div_factor)`` (``three_phase``: back to the start value first).
    Equal to ``torch.optim.lr_scheduler.OneCycleLR(..., cycle_momentum=False)`` step for step.

    The initial value of each param group is overwritten (``initial_<param> = eta_max / div_factor``), as in
    torch and MMEngine. Unlike torch, momentum is not cycled; chain a momentum scheduler for that.

    Args:
        optimizer, param_name, begin, end, last_step, by_epoch, verbose: see ``_ParamScheduler`` (``by_epoch``
            defaults to False: the policy is meant per iteration).
        eta_max: peak value, a float or one per param group.
        total_steps: cycle length (default ``end - begin``).
        pct_start: fraction of the cycle spent rising.
        anneal_strategy: ``'cos'`` or ``'linear'``.
        div_factor: ``initial = eta_max / div_factor``.
        final_div_factor: ``min = initial / final_div_factor``.
        three_phase: rise, fall back to the initial value, then anneal to the minimum.

    Raises:
        ValueError: bad ``total_steps`` / ``pct_start`` / ``anneal_strategy`` / ``eta_max`` length, or stepping
            past ``total_steps``.
    """

    _STEP_ARGS = ('total_steps',)

    def __init__(self, optimizer: Any, param_name: str, eta_max: float | Sequence[float] = 0,
                 total_steps: int | None = None, pct_start: float = 0.3, anneal_strategy: str = 'cos',
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = False,
                 verbose: bool = False) -> None:
        name = type(self).__name__
        if total_steps is None:
            total_steps = end - begin
            if total_steps >= INF:
                raise ValueError(f'{name}: set total_steps or a finite end')
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f'{name}: total_steps must be a positive int, got {total_steps!r}')
        if not 0 <= pct_start <= 1:
            raise ValueError(f'{name}: pct_start must be in [0, 1], got {pct_start}')
        if anneal_strategy not in ('cos', 'linear'):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.anneal_strategy = anneal_strategy
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.three_phase = three_phase
        up = float(pct_start * total_steps) - 1
        if three_phase:
            self._phases = [(up, 'initial', 'max'), (float(2 * pct_start * total_steps) - 2, 'max', 'initial'),
                            (total_steps - 1, 'initial', 'min')]
        else:
            self._phases = [(up, 'initial', 'max'), (total_steps - 1, 'max', 'min')]
        groups = optimizer.param_groups
        if isinstance(eta_max, (list, tuple)):
            if len(eta_max) != len(groups):
                raise ValueError(f'{name}: eta_max has {len(eta_max)} values for {len(groups)} param groups')
            maxima = list(eta_max)
        else:
            maxima = [eta_max] * len(groups)
        if last_step == -1:
            for group, peak in zip(groups, maxima):
                group[f'initial_{param_name}'] = peak / div_factor
                group[f'max_{param_name}'] = peak
                group[f'min_{param_name}'] = peak / div_factor / final_div_factor
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        t = self.last_step
        if t > self.total_steps:
            raise ValueError(f'{type(self).__name__}: stepped {t + 1} times, more than total_steps='
                             f'{self.total_steps}')
        anneal = _cos if self.anneal_strategy == 'cos' else _linear
        p = self.param_name
        out = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end_step, lo_key, hi_key) in enumerate(self._phases):
                if t <= end_step or i == len(self._phases) - 1:
                    pct = (t - start) / (end_step - start)
                    out.append(anneal(group[f'{lo_key}_{p}'], group[f'{hi_key}_{p}'], pct))
                    break
                start = end_step
        return out


@PARAM_SCHEDULERS.register_module()
class OneCycleLR(LRSchedulerMixin, OneCycleParamScheduler):
    """``OneCycleParamScheduler`` on ``lr``: ``dict(type='OneCycleLR', eta_max=0.01, total_steps=1000,
    by_epoch=False)``."""
