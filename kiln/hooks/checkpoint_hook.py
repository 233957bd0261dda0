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
    ``save_last`` the final epoch/iteration is saved whatever the interval. The file is written right after the
    train epoch/iteration, before any validation, so a validation that fails or is killed never costs the
    training it follows. When the loop validates right then, the file is marked ``meta.val_pending=True`` and,
    once the validation is over (``after_val``, after every hook's ``after_val_epoch``), rewritten atomically
    with the post-validation state (best score, plateau schedulers, early-stopping counters), so resuming from
    it continues exactly as the uninterrupted run. Resuming from a file still marked ``val_pending`` (the run
    died during that validation) runs the validation first.
    After each periodic save ``work_dir/last_checkpoint`` points at the new file, and when more than
    ``max_keep_ckpts`` (> 0) periodic checkpoints exist the oldest are deleted. Rotation only ever deletes files
    in this run's own checkpoint directory: the ones it wrote, and after a resume the checkpoint it resumed
    from (when that file is in this directory) together with the earlier periodic checkpoints its state lists
    (only when the resumed run wrote them in this same directory). Checkpoints of another work dir (e.g. the
    original of a copied work dir) are never deleted; neither is an old best checkpoint outside this directory.

    With the train loop's ``check_finite`` on (the default, ``train_cfg.check_finite``), every checkpoint is
    checked before it is written: NaN / inf loss terms or weights stop training with ``FloatingPointError``
    and nothing is written or rotated, so the last finite checkpoint stays on disk.

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
        sharded: write the periodic checkpoints as ``torch.distributed.checkpoint`` directories
            (``epoch_N.dcp`` / ``iter_N.dcp``): with FSDP every rank writes its own shards, nothing is gathered;
            ``resume`` reads them back with any number of ranks (``kiln.checkpoint.sharded``). Best checkpoints
            and published copies stay single files (gathered). Local paths only.

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
                 greater_keys: list[str] | str | None = None, less_keys: list[str] | str | None = None,
                 sharded: bool = False) -> None:
        self.sharded = bool(sharded)
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
        ext = '.dcp' if self.sharded else '.pth'
        self.filename_tmpl = filename_tmpl or (f'epoch_{{}}{ext}' if by_epoch else f'iter_{{}}{ext}')
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
        self._marking = False  # the checkpoint being written precedes a validation (meta.val_pending)
        self._reset()

    def _reset(self) -> None:
        self.best_score: dict[str, float] = {}
        self.best_ckpt: dict[str, str] = {}
        self.saved: list[str] = []  # periodic checkpoints counted for rotation (paths in this run's out dir)
        self._auto_key: str | None = None
        self._resumed: dict | None = None  # the loaded state: names and directory of the earlier checkpoints
        self._loaded_meta: dict | None = None

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """``best_score``, ``best_ckpt`` (paths), ``auto_key``, and the kept periodic checkpoints as file names
        (``saved``) with the directory they were written to (``saved_dir``)."""
        saved_dir = self._out_dir if self._out_dir is not None else (
            _dirname(self.saved[-1]) if self.saved else None)
        return dict(best_score=dict(self.best_score), best_ckpt=dict(self.best_ckpt),
                    saved=[_basename(p) for p in self.saved], saved_dir=saved_dir, auto_key=self._auto_key)

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the best scores; the periodic checkpoints listed are counted for rotation only after
        ``before_train`` has checked that they are in this run's checkpoint directory (see the class doc)."""
        self.best_score = {k: float(v) for k, v in state_dict.get('best_score', {}).items()}
        self.best_ckpt = dict(state_dict.get('best_ckpt', {}))
        saved = list(state_dict.get('saved', []))
        saved_dir = state_dict.get('saved_dir')
        if saved_dir is None and saved:  # older checkpoints stored full paths
            saved_dir = _dirname(saved[-1])
        self._resumed = dict(saved=[_basename(p) for p in saved], saved_dir=saved_dir)
        self.saved = []
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
        self._adopt_resumed(runner)
        meta = self._loaded_meta or {}
        self._loaded_meta = None
        if meta.get('val_pending') and (meta.get('epoch'), meta.get('iter')) == (runner.epoch, runner.iter):
            # resumed from a checkpoint written before a validation that did not finish: validate first
            loop = runner.train_loop
            if hasattr(loop, 'pending_validation'):
                loop.pending_validation = True

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._loaded_meta = dict(meta) if isinstance(meta, dict) else None

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        if self._out_dir is None:  # not training (e.g. a checkpoint saved by hand)
            return
        loop = runner.train_loop
        if hasattr(loop, 'assert_finite'):  # train_cfg.check_finite: never write NaN / inf
            loop.assert_finite(checkpoint.get('state_dict'))
        if self._marking and isinstance(checkpoint.get('meta'), dict):
            checkpoint['meta']['val_pending'] = True

    def _adopt_resumed(self, runner: Runner) -> None:
        """Count for rotation the periodic checkpoints of the resumed run that are in this run's directory."""
        resumed, self._resumed = self._resumed, None
        if not resumed or not resumed['saved'] or self._out_dir is None:
            return
        names, here = resumed['saved'], _same_dir(resumed['saved_dir'], self._out_dir)
        if not here:  # resumed in another directory (a copied work dir): only the file resumed from counts
            source = _resumed_path(runner)
            candidate = _join(self._out_dir, names[-1])
            names = [names[-1]] if source is not None and _same_file(source, candidate) else []
        self.saved = [p for p in (_join(self._out_dir, n) for n in names) if _exists(p)]

    def after_train(self, runner: Runner) -> None:
        self._flush(runner)
        from kiln.dist import is_main_process
        if self.published_keys and self._out_dir is not None and is_main_process():
            from kiln.checkpoint import publish_checkpoint
            sources = ([self.saved[-1]] if self.save_last and self.saved else []) + list(self.best_ckpt.values())
            for src in dict.fromkeys(sources):
                if not _is_url(src) and osp.isdir(src):  # a sharded checkpoint: gather its weights first
                    from kiln.checkpoint.sharded import consolidate_sharded_checkpoint
                    src = consolidate_sharded_checkpoint(src, osp.splitext(src)[0] + '.pth')
                self.published.append(publish_checkpoint(src, keys=self.published_keys, logger=runner.logger))
        self._out_dir = None  # best checkpoints are only saved while training
        self._pending = None

    def after_train_epoch(self, runner: Runner) -> None:
        if self.by_epoch and (self.every_n_epochs(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_epoch(runner))):
            self._save_and_update(runner, runner.epoch + 1)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_iter(runner))):
            self._save_and_update(runner, runner.iter + 1)

    def _save_and_update(self, runner: Runner, step: int) -> None:
        # Write now, so that a validation that fails or is killed never costs this training; when the loop
        # validates right after this epoch/iteration, rewrite the file after the validation, so that it holds
        # the post-validation state (best score, plateau schedulers, early-stopping counters).
        loop = runner.train_loop
        validates = getattr(loop, 'by_epoch', None) == self.by_epoch and loop.validates_after(step)
        self._save_periodic(runner, step, val_pending=validates)
        self._pending = step if validates else None

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

    def idle_train_iter(self, runner: Runner, stage: str) -> bool:
        """Nothing to do per iteration for the coming epoch when saving by epoch with no rewrite pending (see
        ``kiln.hooks.hook.stage_methods``): such a hook sets ``_pending`` only in ``after_train_epoch``."""
        return self.by_epoch and (stage == 'after_train_iter' or self._pending is None)

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        if self._pending is not None:  # (iteration-based loops with a val loop that skips after_val)
            self._flush(runner)

    def _flush(self, runner: Runner) -> None:
        """Rewrite the periodic checkpoint written before the validation with the post-validation state
        (called once the validation is over)."""
        if self._out_dir is not None and self._pending is not None:
            step, self._pending = self._pending, None
            self._save_periodic(runner, step, update=True)

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
    def _save_periodic(self, runner: Runner, step: int, val_pending: bool = False, update: bool = False) -> None:
        from kiln.dist import is_main_process
        from kiln.checkpoint import write_last_checkpoint
        filename = self.filename_tmpl.format(step)
        path = _join(self._out_dir, filename)
        unit = 'epochs' if self.by_epoch else 'iterations'
        if update:
            runner.logger.info(f'Updating checkpoint {filename} with the state after the validation')
            runner.save_checkpoint(self._out_dir, filename, save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, **self._format())
            return
        runner.logger.info(f'Saving checkpoint at {step} {unit}')
        # the list the new file records already holds the file itself (a resume from it counts it)
        kept = [p for p in self.saved if p != path] + [path]
        drop = kept[:-self.max_keep_ckpts] if self.max_keep_ckpts > 0 else []
        kept = kept[len(drop):]
        old, self.saved = self.saved, kept
        _check_finite(runner)  # on every rank (the losses are averaged over ranks): all stop together
        self._marking = val_pending
        try:
            runner.save_checkpoint(self._out_dir, filename, save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, **self._format())
        except BaseException:
            self.saved = old  # nothing was written: nothing is rotated
            raise
        finally:
            self._marking = False
        if not is_main_process():
            return
        write_last_checkpoint(runner.work_dir, path)
        for stale in drop:
            if _same_dir(_dirname(stale), self._out_dir):  # never outside this run's directory
                _remove(stale)

    def _format(self) -> dict:
        return dict(sharded=True) if self.sharded else {}

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
        _check_finite(runner)
        runner.save_checkpoint(self._out_dir, filename, save_optimizer=False, save_param_scheduler=False)
        if is_main_process() and old is not None and old != path and _same_dir(_dirname(old), self._out_dir):
            _remove(old)  # a best file of another directory (a resumed copy's original) is left alone
        runner.logger.info(f'The best checkpoint with {score:.4f} {key} at {step} {unit} is saved to {filename}')


def _is_url(path: str) -> bool:
    return '://' in path and not path.startswith('file://')


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}" if _is_url(directory) else osp.join(directory, name)


def _check_finite(runner: Runner) -> None:
    """The train loop's loss check (``train_cfg.check_finite``), before a checkpoint is written; the weights are
    checked too, on the saving rank, in ``before_save_checkpoint``."""
    loop = runner.train_loop
    if hasattr(loop, 'assert_finite'):
        loop.assert_finite()


def _dirname(path: str) -> str:
    return path.rstrip('/').rsplit('/', 1)[0] if _is_url(path) else osp.dirname(path)


def _basename(path: str) -> str:
    return path.rstrip('/').rsplit('/', 1)[-1] if _is_url(path) else osp.basename(path)


def _same_dir(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    if _is_url(a) or _is_url(b):
        return a.rstrip('/') == b.rstrip('/')
    a, b = osp.realpath(a), osp.realpath(b)
    return a == b


def _same_file(a: str, b: str) -> bool:
    if _is_url(a) or _is_url(b):
        return a == b
    try:
        return osp.samefile(a, b)
    except OSError:
        return False


def _exists(path: str) -> bool:
    if _is_url(path):
        import fsspec
        fs, p = fsspec.core.url_to_fs(path)
        return fs.exists(p)
    return osp.exists(path)


def _resumed_path(runner: Runner) -> str | None:
    """The checkpoint file the runner resumed from, when it says (``resumed_from``, or its resume setting)."""
    path = getattr(runner, 'resumed_from', None)
    if path is None:
        find = getattr(runner, '_resume_path', None)  # the Runner's own resolution of ``resume``
        try:
            path = find() if callable(find) else None
        except Exception:  # pragma: no cover - defensive: never fail a run over rotation bookkeeping
            path = None
    return str(path) if path else None


def _remove(path: str) -> None:
    try:
        if _is_url(path):
            import fsspec
            fs, p = fsspec.core.url_to_fs(path)
            fs.rm(p, recursive=True)
        elif osp.isdir(path):  # a sharded checkpoint directory
            import shutil
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
