"""RuntimeInfoHook: publishes the run's progress, learning rates, losses and metrics to the message hub."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['RuntimeInfoHook']


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 or value.numel() == 1
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:  # numpy scalars / 1-element arrays, without importing numpy here
        return getattr(value, 'size', None) == 1 and hasattr(value, 'dtype')
    except Exception:  # pragma: no cover
        return False


@HOOKS.register_module()
class RuntimeInfoHook(Hook):
    """Keep ``runner.message_hub`` up to date so that loggers, schedulers and other hooks can read the state of
    the run without holding the runner (MMEngine's RuntimeInfoHook).

    Writes:
      - info ``epoch``, ``iter``, ``max_epochs``, ``max_iters`` (ints) before training, ``epoch`` before each
        train epoch and ``iter`` before each train iteration; ``dataset_meta`` (the train dataset's
        ``metainfo``), ``seed`` and ``experiment_name``;
      - scalar ``train/<name>`` = first param group's value of ``optim_wrapper.get_lr()`` (``train/lr``)
        before each train iteration;
      - scalar ``train/<key>`` for every 1-element entry of the ``train_step`` outputs (detached tensors are
        stored as they are: no device sync), and ``train/grad_norm`` from ``optim_wrapper.last_grad_norm``
        when it is not None (``train/<name>.grad_norm`` per optimizer of an ``OptimWrapperDict``);
      - ``val/<key>`` / ``test/<key>`` for every metric after a val/test epoch (scalars via
        ``update_scalar``, anything else via ``update_info``).

    Priority VERY_HIGH, so it runs before the hooks that read these values.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._train_keys: dict[str, str] = {}  # name -> 'train/<name>' (no string building per iteration)
        self._plain_lr_type: type | None = None  # an optim wrapper class with OptimWrapper's get_lr and param_groups
        self._lr_checked_type: type | None = None

    def _train_key(self, name: str) -> str:
        key = self._train_keys.get(name)
        if key is None:
            key = self._train_keys[name] = f'train/{name}'
        return key

    def before_run(self, runner: Runner) -> None:
        hub = runner.message_hub
        hub.update_info('seed', runner.seed)
        hub.update_info('experiment_name', runner.experiment_name)

    def before_train(self, runner: Runner) -> None:
        hub = runner.message_hub
        hub.update_info('epoch', runner.epoch)
        hub.update_info('iter', runner.iter)
        hub.update_info('max_epochs', runner.max_epochs)
        hub.update_info('max_iters', runner.max_iters)
        metainfo = getattr(runner.train_dataloader.dataset, 'metainfo', None)
        if metainfo is not None:
            hub.update_info('dataset_meta', metainfo)

    def before_train_epoch(self, runner: Runner) -> None:
        runner.message_hub.update_info('epoch', runner.epoch)

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        hub = runner.message_hub
        hub.update_info('iter', runner.iter)
        optim_wrapper = runner.optim_wrapper
        if type(optim_wrapper) is self._plain_lr_type:  # OptimWrapper.get_lr without its dict of lists
            hub.update_scalar('train/lr', optim_wrapper.optimizer.param_groups[0]['lr'])
            return
        for name, values in optim_wrapper.get_lr().items():
            hub.update_scalar(self._train_key(name), values[0])
        if self._lr_checked_type is not type(optim_wrapper):  # once per optim wrapper class
            self._lr_checked_type = type(optim_wrapper)
            from kiln.optim.optimizer.optim_wrapper import OptimWrapper
            cls = type(optim_wrapper)
            if (getattr(cls, 'get_lr', None) is OptimWrapper.get_lr
                    and getattr(cls, 'param_groups', None) is OptimWrapper.param_groups):
                self._plain_lr_type = cls

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        hub = runner.message_hub
        keys = self._train_keys
        for key, value in (outputs or {}).items():
            # tensors are detached by the HistoryBuffer when they need it
            if (type(value) is torch.Tensor and value.ndim == 0) or _is_scalar(value):
                hub.update_scalar(keys.get(key) or self._train_key(key), value)
        grad_norm = getattr(runner.optim_wrapper, 'last_grad_norm', None)
        if isinstance(grad_norm, dict):  # OptimWrapperDict: one norm per optimizer
            for name, value in grad_norm.items():
                if value is not None:
                    hub.update_scalar(f'train/{name}.grad_norm', value)
        elif grad_norm is not None:
            hub.update_scalar('train/grad_norm', grad_norm)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._publish_metrics(runner, metrics, 'val')

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._publish_metrics(runner, metrics, 'test')

    @staticmethod
    def _publish_metrics(runner: Runner, metrics: dict[str, Any] | None, mode: str) -> None:
        hub = runner.message_hub
        for key, value in (metrics or {}).items():
            if _is_scalar(value):
                hub.update_scalar(f'{mode}/{key}', value)
            else:
                hub.update_info(f'{mode}/{key}', value)
