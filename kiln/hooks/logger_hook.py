"""LoggerHook: writes the periodic training log line and the evaluation results."""
from __future__ import annotations

import os
import os.path as osp
import shutil
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['LoggerHook']


@HOOKS.register_module()
class LoggerHook(Hook):
    """Log the state of the run every ``interval`` iterations and after each evaluation (MMEngine's LoggerHook).

    Every ``interval`` train iterations (counted within the epoch, ``(batch_idx + 1) % interval == 0``) it asks
    ``runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')`` for ``(tag, line)``, writes the line
    with ``runner.logger.info`` and sends ``tag`` (dict of floats) to ``runner.visualizer.add_scalars(tag,
    step=runner.iter + 1)``, i.e. one JSON object per logged step in ``vis_data/scalars.json``. The last
    iteration of an epoch is logged too unless ``ignore_last`` (and the epoch is longer than ``interval``);
    iteration-based training logs every ``interval`` iterations of the run.
    Val/test iterations are logged every ``interval`` batches (text only). After a val/test epoch the metrics
    line from ``get_log_after_epoch`` is logged and its tag added to the visualizer, at step ``runner.epoch``
    (``log_metric_by_epoch=True``) or ``runner.iter``.

    Args:
        interval: log every this many iterations (> 0).
        ignore_last: skip the incomplete last interval of an epoch.
        log_metric_by_epoch: step of the val/test metric scalars: epoch (True) or iteration (False; use it for
            iteration-based training).
        out_dir: if given, after the run the files of ``log_dir`` whose names end with one of ``out_suffix``
            (text log, ``scalars.json``, the dumped config) are copied to ``out_dir/<work_dir name>/<timestamp>/``
            (same relative layout). ``out_dir`` may be an fsspec URL (``s3://bucket/logs``).
        out_suffix: file name endings to copy (str or tuple).
        keep_local: keep the local copies (False deletes them after copying to ``out_dir``).

    Raises:
        ValueError: ``interval`` is not a positive int.
    """

    priority = 'BELOW_NORMAL'
    _last_logged: int | None = None

    def __init__(self, interval: int = 10, ignore_last: bool = True, log_metric_by_epoch: bool = True,
                 out_dir: str | None = None, out_suffix: str | tuple[str, ...] = ('.json', '.log', '.py', 'yaml'),
                 keep_local: bool = True) -> None:
        if not isinstance(interval, int) or interval <= 0:
            raise ValueError(f'LoggerHook: interval must be a positive int, got {interval!r}')
        self.interval = interval
        self.ignore_last = ignore_last
        self.log_metric_by_epoch = log_metric_by_epoch
        self.out_dir = out_dir
        self.out_suffix = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)
        self.keep_local = keep_local
        # batch index of this epoch's last batch when it is logged although off the interval; -1: none; None:
        # unknown (no before_train_epoch seen), then after_train_iter works it out each time
        self._last_logged: int | None = None

    def before_train_epoch(self, runner: Runner) -> None:
        loop = runner.train_loop
        n = _len(loop.dataloader) if getattr(loop, 'by_epoch', True) else None
        self._last_logged = -1 if n is None or (self.ignore_last and n > self.interval) else n - 1

    def after_train_epoch(self, runner: Runner) -> None:
        self._last_logged = None

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if (batch_idx + 1) % self.interval:  # not a logging iteration, unless it ends the epoch
            last = self._last_logged
            if last is not None:  # known since before_train_epoch: no dataloader length per iteration
                if batch_idx != last:
                    return
            else:
                loop = runner.train_loop
                # batch_idx counts within the epoch for epoch-based loops, over the whole run for iteration-based
                n = _len(loop.dataloader) if getattr(loop, 'by_epoch', True) else None
                if n is None or batch_idx + 1 != n or (self.ignore_last and n > self.interval):
                    return
        tag, line = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
        runner.logger.info(line)
        runner.visualizer.add_scalars(tag, step=runner.iter + 1)

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.every_n_inner_iters(batch_idx, self.interval):
            _, line = runner.log_processor.get_log_after_iter(runner, batch_idx, 'val')
            runner.logger.info(line)

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        if self.every_n_inner_iters(batch_idx, self.interval):
            _, line = runner.log_processor.get_log_after_iter(runner, batch_idx, 'test')
            runner.logger.info(line)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._log_epoch(runner, 'val', len(runner.val_dataloader))

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._log_epoch(runner, 'test', len(runner.test_dataloader))

    def _log_epoch(self, runner: Runner, mode: str, n_batches: int) -> None:
        tag, line = runner.log_processor.get_log_after_epoch(runner, n_batches, mode)
        runner.logger.info(line)
        step = runner.epoch if self.log_metric_by_epoch else runner.iter
        runner.visualizer.add_scalars(tag, step=step)

    def after_run(self, runner: Runner) -> None:
        from kiln.dist import is_main_process
        from kiln.visualization.vis_backend import LocalVisBackend
        for backend in getattr(getattr(runner, 'visualizer', None), 'vis_backends', {}).values():
            if isinstance(backend, LocalVisBackend):  # its scalar file stays open during the run
                backend.close()
        if self.out_dir is None or not is_main_process():
            return
        url = '://' in self.out_dir and not self.out_dir.startswith('file://')
        name = osp.basename(osp.normpath(runner.work_dir))
        target = f"{self.out_dir.rstrip('/')}/{name}" if url else osp.join(self.out_dir, name)
        for root, _, files in os.walk(runner.log_dir):
            for file in sorted(files):
                if not file.endswith(self.out_suffix):
                    continue
                src = osp.join(root, file)
                rel = osp.relpath(src, runner.work_dir)
                if url:
                    import fsspec
                    fs, dst = fsspec.core.url_to_fs(f"{target}/{rel.replace(os.sep, '/')}")
                    fs.put_file(src, dst)
                else:
                    dst = osp.join(target, rel)
                    os.makedirs(osp.dirname(dst), exist_ok=True)
                    shutil.copy2(src, dst)
                if not self.keep_local:
                    os.remove(src)
        runner.logger.info(f'The logs were copied to {target}')


def _len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None
