"""CheckpointHook: periodic, last and best checkpoints during training."""
from __future__ import annotations

import os
import os.path as osp
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['CheckpointHook']

_RULES = ('greater', 'less')


def _infer_rule(key: str, greater_keys: list[str] = (), less_keys: list[str] = ()) -> str:
    """``rule`` for a metric key: the user's ``less_keys`` / ``greater_keys`` (substrings of the key) first, then
    ``'less'`` for keys containing ``'loss'`` and ``'greater'`` for everything else."""
    if any(k in key for k in less_keys):
        return 'less'
    if any(k in key for k in greater_keys):
        return 'greater'
    return 'less' if 'loss' in key.lower() else 'greater'


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Save checkpoints while training (MMEngine's CheckpointHook), on rank 0 only.

    Periodic checkpoints: every ``interval`` epochs (``by_epoch=True``, named ``epoch_{N}.pth`` with N 1-based) or
    iterations (``by_epoch=False``, ``iter_{N}.pth``), starting at epoch/iteration ``save_begin``; with
    ``save_last`` the final epoch/iteration is saved whatever the interval. The file is written after the train
    epoch/iteration, or, when the loop validates right then, after that validation, so that it holds the
    post-validation state (best score, plateau schedulers, early-stopping counters) and resuming from it
    continues exactly as the uninterrupted run (the save happens in ``after_val``, after every hook's
    ``after_val_epoch``).
    After each periodic save ``work_dir/last_checkpoint`` points at the new file, and when more than
    ``max_keep_ckpts`` (> 0) periodic checkpoints exist the oldest are deleted.

    Best checkpoint: with ``save_best`` (a metric key such as ``'coco/bbox_mAP'``, a list of keys, or
    ``'auto'`` = the first key of the first metrics dict), after every validation during training the score is
    compared with the best so far using ``rule`` (``'greater'`` or ``'less'``; when None: ``'less'`` if the key
    contains ``'loss'``, else ``'greater'``). A new best is saved (weights and meta only) as
    ``best_{key with '/' -> '_'}_epoch_{N}.pth`` (``_iter_{N}`` when ``by_epoch=False``) and the previous best
    file is removed. Best scores, best paths and the list of kept checkpoints are in ``state_dict()``, which the
    Runner stores in the checkpoint and restores on resume.

    Args:
        interval: save every this many epochs/iterations; <= 0 saves only the last one (with ``save_last``).
        by_epoch: count ``interval`` in epochs (True) or iterations.
        save_optimizer / save_param_scheduler: include the optimizer / scheduler states (needed to resume).
        out_dir: directory for the checkpoints; default ``runner.work_dir``; otherwise
            ``out_dir/<work_dir name>``.
        max_keep_ckpts: keep at most this many periodic checkpoints (<= 0: keep all).
        save_last: always save the last epoch/iteration.
        save_best / rule: see above.
        greater_keys / less_keys: extra key substrings for inferring ``rule`` when it is None (e.g.
            ``less_keys=['error']``); they take precedence over the ``'loss'`` default.
        filename_tmpl: periodic file name with one ``{}`` for N; default ``'epoch_{}.pth'`` / ``'iter_{}.pth'``.
        save_begin: first epoch/iteration (1-based) that may be saved periodically.
        published_keys: after training, write a release copy of the last checkpoint (with ``save_last``) and of
            each best checkpoint holding only these top-level keys (e.g. ``['meta', 'state_dict']``; ``True``
            means those two), named ``<stem>-<first 8 hex digits of its sha256>.pth`` next to the original
            (MMEngine renames the original; kiln keeps it so ``last_checkpoint`` stays valid).

    ``out_dir`` may be an fsspec URL (``s3://bucket/ckpts``, ``memory://x``...): checkpoints are written and
    old ones removed through fsspec; ``work_dir/last_checkpoint`` then holds the URL.

    Raises:
        ValueError: a ``rule`` other than 'greater'/'less', or ``rule`` and ``save_best`` lists of different
            lengths.
        KeyError: at validation time, a ``save_best`` key missing from the metrics (the message lists them).
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, out_dir: str | None = None, max_keep_ckpts: int = -1,
                 save_last: bool = True, save_best: str | list[str] | None = None,
                 rule: str | list[str] | None = None, filename_tmpl: str | None = None,
                 save_begin: int = 0, published_keys: list[str] | str | bool | None = None,
                 greater_keys: list[str] | str | None = None, less_keys: list[str] | str | None = None) -> None:
        self.greater_keys = [greater_keys] if isinstance(greater_keys, str) else list(greater_keys or [])
        self.less_keys = [less_keys] if isinstance(less_keys, str) else list(less_keys or [])
        if published_keys is True:
            published_keys = ['meta', 'state_dict']
        elif isinstance(published_keys, str):
            published_keys = [published_keys]
        self.published_keys = list(published_keys) if published_keys else None
        self.published: list[str] = []
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self.out_dir = out_dir
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.save_begin = save_begin
        self.filename_tmpl = filename_tmpl or ('epoch_{}.pth' if by_epoch else 'iter_{}.pth')
        self.save_best = [save_best] if isinstance(save_best, str) else list(save_best or [])
        rules = [rule] * len(self.save_best) if rule is None or isinstance(rule, str) else list(rule)
        if len(rules) != len(self.save_best):
            raise ValueError(f'CheckpointHook: got {len(rules)} rules for {len(self.save_best)} save_best keys')
        for r in rules:
            if r is not None and r not in _RULES:
                raise ValueError(f"CheckpointHook: rule must be 'greater', 'less' or None, got {r!r}")
        self.rules = rules
        self._out_dir: str | None = None
        self._pending: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.best_score: dict[str, float] = {}
        self.best_ckpt: dict[str, str] = {}
        self.saved: list[str] = []
        self._auto_key: str | None = None

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return dict(best_score=dict(self.best_score), best_ckpt=dict(self.best_ckpt), saved=list(self.saved),
                    auto_key=self._auto_key)

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score = {k: float(v) for k, v in state_dict.get('best_score', {}).items()}
        self.best_ckpt = dict(state_dict.get('best_ckpt', {}))
        self.saved = list(state_dict.get('saved', []))
        self._auto_key = state_dict.get('auto_key')

    # ------------------------------------------------------------------------------------- mount points
    def before_run(self, runner: Runner) -> None:
        self._reset()

    def before_train(self, runner: Runner) -> None:
        if self.out_dir is None:
            self._out_dir = runner.work_dir
        else:
            self._out_dir = _join(self.out_dir, osp.basename(osp.normpath(runner.work_dir)))
        runner.logger.info(f'Checkpoints will be saved to {self._out_dir}')

    def after_train(self, runner: Runner) -> None:
        self._flush(runner)
        from kiln.dist import is_main_process
        if self.published_keys and self._out_dir is not None and is_main_process():
            from .publish import publish_checkpoint
            sources = ([self.saved[-1]] if self.save_last and self.saved else []) + list(self.best_ckpt.values())
            for src in dict.fromkeys(sources):
                self.published.append(publish_checkpoint(src, self.published_keys, runner.logger))
        self._out_dir = None  # best checkpoints are only saved while training
        self._pending = None

    def after_train_epoch(self, runner: Runner) -> None:
        if self.by_epoch and (self.every_n_epochs(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_epoch(runner))):
            self._save_or_defer(runner, runner.epoch + 1)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_iter(runner))):
            self._save_or_defer(runner, runner.iter + 1)

    def _save_or_defer(self, runner: Runner, step: int) -> None:
        # When the loop validates right after this epoch/iteration, save after the validation instead, so the
        # checkpoint holds the post-validation state (best score, plateau schedulers, early stopping counters).
        loop = runner.train_loop
        if getattr(loop, 'by_epoch', None) == self.by_epoch and loop.validates_after(step):
            self._pending = step
        else:
            self._save_periodic(runner, step)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if self._out_dir is None:
            return
        if self.save_best and metrics:
            self._save_best(runner, metrics)

    def after_val(self, runner: Runner) -> None:
        # after every hook's after_val_epoch (whatever their priority, e.g. EarlyStoppingHook's LOWEST), so the
        # periodic checkpoint holds their post-validation state
        self._flush(runner)

    def before_train_epoch(self, runner: Runner) -> None:
        self._flush(runner)  # a custom val loop may not call after_val: the validation is over by now anyway

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        self._flush(runner)

    def _flush(self, runner: Runner) -> None:
        """Write the periodic checkpoint deferred until after the validation (called once it is over)."""
        if self._out_dir is not None and self._pending is not None:
            step, self._pending = self._pending, None
            self._save_periodic(runner, step)

    def _save_best(self, runner: Runner, metrics: dict[str, Any]) -> None:
        for key, rule in zip(self.save_best, self.rules):
            if key == 'auto':
                if self._auto_key is None:
                    self._auto_key = next(iter(metrics))
                key = self._auto_key
            if key not in metrics:
                raise KeyError(f'CheckpointHook: save_best={key!r} is not one of the validation metrics '
                               f'{sorted(metrics)}')
            self._update_best(runner, key, rule or _infer_rule(key, self.greater_keys, self.less_keys),
                              float(metrics[key]))

    # ------------------------------------------------------------------------------------------ saving
    def _save_periodic(self, runner: Runner, step: int) -> None:
        from kiln.dist import is_main_process
        from kiln.runner.checkpoint import write_last_checkpoint
        runner.logger.info(f"Saving checkpoint at {step} {'epochs' if self.by_epoch else 'iterations'}")
        filename = self.filename_tmpl.format(step)
        runner.save_checkpoint(self._out_dir, filename, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler)
        path = _join(self._out_dir, filename)
        if not is_main_process():
            return
        write_last_checkpoint(runner.work_dir, path)
        if path in self.saved:
            self.saved.remove(path)
        self.saved.append(path)
        if self.max_keep_ckpts > 0:
            while len(self.saved) > self.max_keep_ckpts:
                _remove(self.saved.pop(0))

    def _update_best(self, runner: Runner, key: str, rule: str, score: float) -> None:
        best = self.best_score.get(key)
        if best is not None and not (score > best if rule == 'greater' else score < best):
            return
        from kiln.dist import is_main_process
        unit, step = ('epoch', runner.epoch) if self.by_epoch else ('iter', runner.iter)
        filename = f"best_{key.replace('/', '_')}_{unit}_{step}.pth"
        path = _join(self._out_dir, filename)
        old = self.best_ckpt.get(key)
        self.best_score[key] = score
        self.best_ckpt[key] = path
        runner.message_hub.update_info(f'best_score/{key}', score)
        runner.save_checkpoint(self._out_dir, filename, save_optimizer=False, save_param_scheduler=False)
        if is_main_process() and old is not None and old != path:
            _remove(old)
        runner.logger.info(f'The best checkpoint with {score:.4f} {key} at {step} {unit} is saved to {filename}')


def _is_url(path: str) -> bool:
    return '://' in path and not path.startswith('file://')


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}" if _is_url(directory) else osp.join(directory, name)


def _remove(path: str) -> None:
    try:
        if _is_url(path):
            import fsspec
            fs, p = fsspec.core.url_to_fs(path)
            fs.rm(p)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
