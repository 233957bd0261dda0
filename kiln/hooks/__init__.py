"""Hooks: the ``Hook`` base class and the built-in hooks (one per file), registered in ``HOOKS``."""
from .check_invalid_loss_hook import CheckInvalidLossHook
from .checkpoint_hook import CheckpointHook
from .early_stopping_hook import EarlyStoppingHook
from .ema_hook import EMAHook
from .empty_cache_hook import EmptyCacheHook
from .hook import Hook
from .iter_timer_hook import IterTimerHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .profiler_hook import ProfilerHook
from .run_summary_hook import RunSummaryHook
from .runtime_info_hook import RuntimeInfoHook
from .sampler_seed_hook import DistSamplerSeedHook
from .stop_file_hook import StopFileHook
from .sync_buffers_hook import SyncBuffersHook

__all__ = ['Hook', 'CheckInvalidLossHook', 'CheckpointHook', 'DistSamplerSeedHook', 'EarlyStoppingHook',
           'EMAHook', 'EmptyCacheHook', 'IterTimerHook', 'LoggerHook', 'ParamSchedulerHook', 'ProfilerHook',
           'RunSummaryHook', 'RuntimeInfoHook', 'StopFileHook', 'SyncBuffersHook']
