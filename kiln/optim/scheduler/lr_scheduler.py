"""Learning-rate schedulers: the param schedulers with ``param_name='lr'``."""
from __future__ import annotations

from typing import Any

from kiln.registry import PARAM_SCHEDULERS

from .param_scheduler import (ConstantParamScheduler, CosineAnnealingParamScheduler, ExponentialParamScheduler,
                              LinearParamScheduler, MultiStepParamScheduler, PolyParamScheduler,
                              StepParamScheduler)


class LRSchedulerMixin:
    """Fixes ``param_name='lr'``."""

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, 'lr', *args, **kwargs)


@PARAM_SCHEDULERS.register_module()
class ConstantLR(LRSchedulerMixin, ConstantParamScheduler):
    """``ConstantParamScheduler`` on ``lr``: ``dict(type='ConstantLR', factor=0.1, begin=0, end=n)``."""


@PARAM_SCHEDULERS.register_module()
class LinearLR(LRSchedulerMixin, LinearParamScheduler):
    """``LinearParamScheduler`` on ``lr`` (warm-up): ``dict(type='LinearLR', start_factor=0.001,
    by_epoch=False, begin=0, end=500)``."""


@PARAM_SCHEDULERS.register_module()
class StepLR(LRSchedulerMixin, StepParamScheduler):
    """``StepParamScheduler`` on ``lr``."""


@PARAM_SCHEDULERS.register_module()
class MultiStepLR(LRSchedulerMixin, MultiStepParamScheduler):
    """``MultiStepParamScheduler`` on ``lr``: ``dict(type='MultiStepLR', milestones=[8, 11], gamma=0.1)``."""


@PARAM_SCHEDULERS.register_module()
class ExponentialLR(LRSchedulerMixin, ExponentialParamScheduler):
    """``ExponentialParamScheduler`` on ``lr``."""


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingLR(LRSchedulerMixin, CosineAnnealingParamScheduler):
    """``CosineAnnealingParamScheduler`` on ``lr``."""


@PARAM_SCHEDULERS.register_module()
class PolyLR(LRSchedulerMixin, PolyParamScheduler):
    """``PolyParamScheduler`` on ``lr``."""
