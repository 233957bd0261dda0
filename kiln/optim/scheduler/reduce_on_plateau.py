"""Reduce a value when a validation metric stops improving. Reference: MMEngine
``ReduceOnPlateauParamScheduler`` and ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (same rules)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from kiln.registry import PARAM_SCHEDULERS

from .lr_scheduler import LRSchedulerMixin
from .momentum_scheduler import MomentumSchedulerMixin
from .param_scheduler import INF, _ParamScheduler


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauParamScheduler(_ParamScheduler):
    """Multiply the value by ``factor`` when ``metrics[monitor]`` has not improved for ``patience`` validations.

    ``need_val_args = True``: the ``ParamSchedulerHook`` calls ``step(metrics)`` after every validation (with
    the evaluator's dict, e.g. ``{'coco/bbox_mAP': 0.41}``), not after train iterations/epochs. ``begin`` /
    ``end`` count those calls from 0 (the Runner's default ``end=max_epochs`` thus covers a validation after
    every epoch). ``step()`` without metrics only advances the count.

    Args:
        optimizer, param_name, begin, end, last_step, by_epoch, verbose: see ``_ParamScheduler``.
        monitor: metric key to watch (e.g. ``'coco/bbox_mAP'``, ``'loss'``).
        rule: ``'less'`` (lower is better) or ``'greater'``.
        factor: multiplier in [0, 1).
        patience: validations without improvement tolerated before reducing.
        threshold, threshold_rule: improvement needed to count as better: ``'rel'`` (best * (1 -/+ threshold))
            or ``'abs'`` (best -/+ threshold).
        cooldown: validations to wait after a reduction before counting bad ones again.
        min_value: lower bound, a float or one per param group.
        eps: reductions smaller than this are skipped.

    Raises:
        ValueError: bad ``rule`` / ``threshold_rule`` / ``factor`` / ``min_value`` length.
        KeyError: ``monitor`` missing from the metrics passed to ``step``.
        TypeError: ``metrics`` is not a dict.
    """

    need_val_args = True

    def __init__(self, optimizer: Any, param_name: str, monitor: str = 'loss', rule: str = 'less',
                 factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, threshold_rule: str = 'rel',
                 cooldown: int = 0, min_value: float | Sequence[float] = 0.0, eps: float = 1e-8, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        name = type(self).__name__
        if rule not in ('less', 'greater'):
            raise ValueError(f"{name}: rule must be 'less' or 'greater', got {rule!r}")
        if threshold_rule not in ('rel', 'abs'):
            raise ValueError(f"{name}: threshold_rule must be 'rel' or 'abs', got {threshold_rule!r}")
        if not 0 <= factor < 1:
            raise ValueError(f'{name}: factor must be in [0, 1), got {factor}')
        n = len(optimizer.param_groups)
        if isinstance(min_value, (list, tuple)):
            if len(min_value) != n:
                raise ValueError(f'{name}: min_value has {len(min_value)} values for {n} param groups')
            self.min_values = [float(v) for v in min_value]
        else:
            self.min_values = [float(min_value)] * n
        self.monitor = monitor
        self.rule = rule
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_rule = threshold_rule
        self.cooldown = cooldown
        self.eps = eps
        self.best = math.inf if rule == 'less' else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)
        self._global_step -= 1  # construction is no validation: the first step(metrics) is step 0

    def _is_better(self, a: float) -> bool:
        t = self.threshold
        if self.rule == 'less':
            return a < (self.best * (1 - t) if self.threshold_rule == 'rel' else self.best - t)
        return a > (self.best * (1 + t) if self.threshold_rule == 'rel' else self.best + t)

    def step(self, metrics: dict | None = None) -> None:  # type: ignore[override]
        """Count one validation and, with ``metrics``, update the plateau state (reducing when due)."""
        self._global_step += 1
        if metrics is not None:
            if not isinstance(metrics, dict):
                raise TypeError(f'{type(self).__name__}.step: metrics must be a dict, got '
                                f'{type(metrics).__name__}')
            if self.begin <= self._global_step < self.end:
                self._update(metrics)
        self._last_value = self._current()

    def _update(self, metrics: dict) -> None:
        if self.monitor not in metrics:
            raise KeyError(f'{type(self).__name__}: monitor {self.monitor!r} not in the metrics '
                           f'{sorted(metrics)}')
        self.last_step += 1
        value = float(metrics[self.monitor])  # one host sync per validation
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, (group, new) in enumerate(zip(self.optimizer.param_groups, self._get_value())):
                if group[self.param_name] - new > self.eps:
                    group[self.param_name] = new
                    if self.verbose:
                        from .param_scheduler import _logger
                        _logger.info('%s: %s of group %d reduced to %.4e', type(self).__name__,
                                     self.param_name, i, new)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _get_value(self) -> list[float]:
        return [max(v * self.factor, lo) for v, lo in zip(self._current(), self.min_values)]


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauLR(LRSchedulerMixin, ReduceOnPlateauParamScheduler):
    """``ReduceOnPlateauParamScheduler`` on ``lr``: ``dict(type='ReduceOnPlateauLR', monitor='coco/bbox_mAP',
    rule='greater', factor=0.5, patience=2)``."""


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauMomentum(MomentumSchedulerMixin, ReduceOnPlateauParamScheduler):
    """``ReduceOnPlateauParamScheduler`` on momentum (``betas[0]`` for Adam-like optimizers)."""
