"""ParamSchedulerHook: steps the parameter schedulers (learning rate, momentum...) during training."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['ParamSchedulerHook']


def _schedulers(runner: Runner) -> Iterable[Any]:
    schedulers = runner.param_schedulers
    if not schedulers:
        return []
    if isinstance(schedulers, dict):  # one list per optimizer wrapper
        return [s for group in schedulers.values() for s in group]
    return list(schedulers)


@HOOKS.register_module()
class ParamSchedulerHook(Hook):
    """Step every scheduler of ``runner.param_schedulers`` (MMEngine's ParamSchedulerHook):
    ``by_epoch=False`` ones after each train iteration, ``by_epoch=True`` ones after each train epoch.

    Schedulers with ``need_val_args = True`` (e.g. ``ReduceOnPlateauLR``) are instead stepped after each
    validation epoch with the metrics dict: ``scheduler.step(metrics)``. Priority LOW, so it runs after the
    logger (which reports the learning rate that was used) and before the CheckpointHook.
    """

    priority = 'LOW'

    def idle_train_iter(self, runner: Runner, stage: str) -> bool:
        """True when no scheduler steps per iteration (see ``kiln.hooks.hook.stage_methods``)."""
        return not any(not s.by_epoch and not getattr(s, 'need_val_args', False) for s in _schedulers(runner))

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if not runner.param_schedulers:
            return
        for scheduler in _schedulers(runner):
            if not scheduler.by_epoch and not getattr(scheduler, 'need_val_args', False):
                scheduler.step()

    def after_train_epoch(self, runner: Runner) -> None:
        for scheduler in _schedulers(runner):
            if scheduler.by_epoch and not getattr(scheduler, 'need_val_args', False):
                scheduler.step()

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if metrics is None:
            return
        for scheduler in _schedulers(runner):
            if getattr(scheduler, 'need_val_args', False):
                scheduler.step(metrics)
