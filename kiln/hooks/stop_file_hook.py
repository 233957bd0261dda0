"""StopFileHook: end training cleanly when a stop file appears in the work dir (written by ``kiln eval-watch``)."""
from __future__ import annotations

import os
import os.path as osp
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['StopFileHook', 'stop_file_exists']


def _is_url(path: str) -> bool:
    return '://' in path and not path.startswith('file://')


def stop_file_exists(path: str) -> bool:
    """Whether ``path`` (local path or fsspec URL) exists."""
    if _is_url(path):
        import fsspec
        fs, p = fsspec.core.url_to_fs(path)
        return fs.exists(p)
    return osp.exists(path)


@HOOKS.register_module()
class StopFileHook(Hook):
    """Stop training when ``<work_dir>/<filename>`` exists (a *stop file*, e.g. written by
    ``kiln eval-watch --stop-after-no-improvement N``, or by hand: ``touch work_dir/STOP``).

    - Epoch-based training checks at the end of every epoch: the epoch ends normally (its checkpoint is saved and
      its validation, if any, runs), then the loop stops.
    - Iteration-based training checks every ``interval`` iterations; the loop stops after that iteration and,
      when the ``CheckpointHook`` did not just save it, that iteration is saved (so the last state is kept).

    Rank 0 looks for the file and broadcasts the answer, so every rank stops at the same iteration. A stop file
    already present when training starts is stale (left by an earlier run): it is removed with a warning, so a
    resumed run does not stop at once. The file is left in place after it stopped a run (it records why).
    The check is a single ``stat`` (an fsspec ``exists`` for URL work dirs: raise ``interval`` there).
    Registered by default (``default_hooks.stop_file``; set it to None to disable).

    Args:
        filename: stop file name, relative to ``runner.work_dir``.
        interval: check every this many iterations (iteration-based training only; >= 1).

    Raises:
        ValueError: ``interval`` < 1.
    """

    priority = 'LOWEST'  # after CheckpointHook in the same mount point: it sees whether this step was saved

    def __init__(self, filename: str = 'STOP', interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'StopFileHook: interval must be an int >= 1, got {interval!r}')
        self.filename = filename
        self.interval = interval

    def _path(self, runner: Runner) -> str:
        work_dir = os.fspath(runner.work_dir)
        return work_dir.rstrip('/') + '/' + self.filename if _is_url(work_dir) else osp.join(work_dir, self.filename)

    def _requested(self, runner: Runner) -> bool:
        from kiln.dist import broadcast_object_list, is_main_process
        flag = [stop_file_exists(self._path(runner)) if is_main_process() else False]
        broadcast_object_list(flag)
        return bool(flag[0])

    def before_train(self, runner: Runner) -> None:
        from kiln.dist import is_main_process
        path = self._path(runner)
        if is_main_process() and stop_file_exists(path):
            runner.logger.warning(f'StopFileHook: removing the stale stop file {path} left by an earlier run')
            if _is_url(path):
                import fsspec
                fs, p = fsspec.core.url_to_fs(path)
                fs.rm(p)
            else:
                os.remove(path)

    def after_train_epoch(self, runner: Runner) -> None:
        loop = runner.train_loop
        if getattr(loop, 'by_epoch', True) and self._requested(runner):
            loop.stop_training = True
            runner.logger.info(f'Stop file {self._path(runner)} found: training stops after epoch {runner.epoch + 1}')

    def idle_train_iter(self, runner: Runner, stage: str) -> bool:
        """Epoch-based loops look for the file after each epoch only (see ``kiln.hooks.hook.stage_methods``)."""
        return getattr(runner.train_loop, 'by_epoch', True)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        loop = runner.train_loop
        if getattr(loop, 'by_epoch', True) or not self.every_n_train_iters(runner, self.interval):
            return
        if not self._requested(runner):
            return
        loop.stop_training = True
        step = runner.iter + 1
        runner.logger.info(f'Stop file {self._path(runner)} found: training stops after iteration {step}')
        for hook in runner.hooks:  # keep this iteration's state unless the CheckpointHook just saved it
            if type(hook).__name__ == 'CheckpointHook' and not hook.by_epoch and not self.is_last_train_iter(runner):
                name = hook.filename_tmpl.format(step)
                if not (hook.saved and osp.basename(str(hook.saved[-1])) == name):
                    hook._save_and_update(runner, step)
