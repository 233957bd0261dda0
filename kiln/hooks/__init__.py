"""Hooks: the ``Hook`` base class and the built-in hooks (one per file), registered in ``HOOKS``."""
from .checkpoint_hook import CheckpointHook
from .early_stopping_hook import EarlyStoppingHook
from .hook import Hook
from .iter_timer_hook import IterTimerHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .runtime_info_hook import RuntimeInfoHook
from .sampler_seed_hook import DistSamplerSeedHook

__all__ = ['Hook', 'CheckpointHook', 'DistSamplerSeedHook', 'EarlyStoppingHook', 'IterTimerHook', 'LoggerHook',
           'ParamSchedulerHook', 'RuntimeInfoHook']
