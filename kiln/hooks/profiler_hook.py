"""ProfilerHook: profile the first training epochs/iterations with ``torch.profiler``."""
from __future__ import annotations

import os
import os.path as osp
from typing import TYPE_CHECKING, Any, Callable

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['ProfilerHook']


@HOOKS.register_module()
class ProfilerHook(Hook):
    """Record the first ``profile_times`` training epochs (``by_epoch``) or iterations with
    ``torch.profiler.profile`` and write a Chrome trace (open in ``chrome://tracing`` or Perfetto) to
    ``json_trace_path`` (default ``<log_dir>/profiler_trace.json``); the operator table sorted by CPU time is
    logged too. MMEngine's ``ProfilerHook`` arguments.

    Args:
        by_epoch: count ``profile_times`` in epochs (True) or iterations.
        profile_times: how many epochs/iterations to profile (>= 1).
        activity_with_cpu / activity_with_cuda: profiled activities.
        schedule: ``dict(wait=, warmup=, active=, repeat=)`` for ``torch.profiler.schedule`` (the profiler is
            stepped every iteration; needs ``on_trace_ready`` or a ``json_trace_path`` to get results).
        on_trace_ready: a callable ``fn(profiler)``, or ``dict(type='log_trace', sort_by=..., row_limit=...)``
            (log the operator table) or ``dict(type='tb_trace', dir_name=...)`` (TensorBoard plugin traces,
            default dir ``<log_dir>/tf_tracing_logs``).
        record_shapes / profile_memory / with_stack / with_flops: ``torch.profiler.profile`` options.
        json_trace_path: where to write the Chrome trace (a file path).

    Raises:
        ValueError: ``profile_times`` < 1, both activities off, or an unknown ``on_trace_ready`` type.
    """

    priority = 'VERY_LOW'

    def __init__(self, by_epoch: bool = True, profile_times: int = 1, activity_with_cpu: bool = True,
                 activity_with_cuda: bool = False, schedule: dict | None = None,
                 on_trace_ready: Callable | dict | None = None, record_shapes: bool = False,
                 profile_memory: bool = False, with_stack: bool = False, with_flops: bool = False,
                 json_trace_path: str | None = None) -> None:
        if profile_times < 1:
            raise ValueError(f'ProfilerHook: profile_times must be >= 1, got {profile_times}')
        if not (activity_with_cpu or activity_with_cuda):
            raise ValueError('ProfilerHook: at least one of activity_with_cpu / activity_with_cuda must be True')
        if isinstance(on_trace_ready, dict) and on_trace_ready.get('type') not in ('log_trace', 'tb_trace'):
            raise ValueError("ProfilerHook: on_trace_ready type must be 'log_trace' or 'tb_trace', got "
                             f"{on_trace_ready.get('type')!r}")
        self.by_epoch = by_epoch
        self.profile_times = profile_times
        self.activity_with_cpu = activity_with_cpu
        self.activity_with_cuda = activity_with_cuda
        self.schedule = schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.with_flops = with_flops
        self.json_trace_path = json_trace_path
        self.profiler: Any = None
        self.trace_path: str | None = None  # the Chrome trace written, once done

    def _trace_handler(self, runner: Runner) -> Callable | None:
        cfg = self.on_trace_ready
        if cfg is None or callable(cfg):
            return cfg
        cfg = dict(cfg)
        kind = cfg.pop('type')
        if kind == 'log_trace':
            def log_trace(prof: Any) -> None:
                runner.logger.info('\n' + prof.key_averages().table(**cfg))
            return log_trace
        import torch.profiler
        dir_name = cfg.pop('dir_name', osp.join(runner.log_dir, 'tf_tracing_logs'))
        return torch.profiler.tensorboard_trace_handler(dir_name, **cfg)

    def before_train(self, runner: Runner) -> None:
        import torch.profiler as tp
        activities = [a for a, on in ((tp.ProfilerActivity.CPU, self.activity_with_cpu),
                                      (tp.ProfilerActivity.CUDA, self.activity_with_cuda)) if on]
        schedule = tp.schedule(**self.schedule) if self.schedule is not None else None
        self.profiler = tp.profile(activities=activities, schedule=schedule,
                                   on_trace_ready=self._trace_handler(runner), record_shapes=self.record_shapes,
                                   profile_memory=self.profile_memory, with_stack=self.with_stack,
                                   with_flops=self.with_flops)
        self.profiler.__enter__()
        runner.logger.info(f"ProfilerHook: profiling the first {self.profile_times} "
                           f"{'epochs' if self.by_epoch else 'iterations'}")

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self.profiler is None:
            return
        if self.schedule is not None:
            self.profiler.step()
        if not self.by_epoch and runner.iter + 1 >= self.profile_times:
            self._finish(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        if self.profiler is not None and self.by_epoch and runner.epoch + 1 >= self.profile_times:
            self._finish(runner)

    def after_train(self, runner: Runner) -> None:
        if self.profiler is not None:  # training ended (or was stopped) before profile_times
            self._finish(runner)

    def _finish(self, runner: Runner) -> None:
        profiler, self.profiler = self.profiler, None
        profiler.__exit__(None, None, None)
        if self.schedule is not None and self.json_trace_path is None:
            return  # results went to on_trace_ready according to the schedule
        path = self.json_trace_path or osp.join(runner.log_dir, 'profiler_trace.json')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        profiler.export_chrome_trace(path)
        self.trace_path = path
        if self.on_trace_ready is None:
            table = profiler.key_averages().table(sort_by='self_cpu_time_total', row_limit=15)
            runner.logger.info(f'ProfilerHook: Chrome trace written to {path}\n{table}')
        else:
            runner.logger.info(f'ProfilerHook: Chrome trace written to {path}')
