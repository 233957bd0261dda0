"""Momentum schedulers: the param schedulers on ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family)."""
from __future__ import annotations

from typing import Any

from kiln.registry import PARAM_SCHEDULERS

from .param_scheduler import (ConstantParamScheduler, CosineAnnealingParamScheduler, ExponentialParamScheduler,
                              LinearParamScheduler, MultiStepParamScheduler, PolyParamScheduler,
                              StepParamScheduler)


class MomentumSchedulerMixin:
    """Schedules ``momentum``; for optimizers with ``betas`` (Adam, AdamW, ...) a ``momentum`` key mirrors
    ``betas[0]`` and is written back into ``betas`` after every step.

    Raises:
        ValueError: the optimizer has neither ``momentum`` nor ``betas``.
    """

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        defaults = getattr(optimizer, 'defaults', None) or optimizer.param_groups[0]
        self.use_betas = False
        if 'momentum' in defaults:
            pass
        elif 'betas' in defaults:
            self.use_betas = True
            for group in optimizer.param_groups:
                group['momentum'] = group['betas'][0]
        else:
            raise ValueError(f'{type(self).__name__}: optimizer {type(optimizer).__name__} has neither '
                             "'momentum' nor 'betas' to schedule")
        super().__init__(optimizer, 'momentum', *args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> None:
        super().step(*args, **kwargs)
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group['betas'] = (group['momentum'], group['betas'][1])


@PARAM_SCHEDULERS.register_module()
class ConstantMomentum(MomentumSchedulerMixin, ConstantParamScheduler):
    """``ConstantParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class LinearMomentum(MomentumSchedulerMixin, LinearParamScheduler):
    """``LinearParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class StepMomentum(MomentumSchedulerMixin, StepParamScheduler):
    """``StepParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class MultiStepMomentum(MomentumSchedulerMixin, MultiStepParamScheduler):
    """``MultiStepParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class ExponentialMomentum(MomentumSchedulerMixin, ExponentialParamScheduler):
    """``ExponentialParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingMomentum(MomentumSchedulerMixin, CosineAnnealingParamScheduler):
    """``CosineAnnealingParamScheduler`` on momentum."""


@PARAM_SCHEDULERS.register_module()
class PolyMomentum(MomentumSchedulerMixin, PolyParamScheduler):
    """``PolyParamScheduler`` on momentum."""
