"""The ``Hook`` base class: the 22 mount points the Runner and its loops call, plus interval helpers.

Reference: MMEngine ``mmengine.hooks.Hook`` (same mount points, arguments and call order), re-implemented.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sized

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['Hook', 'overrides', 'stage_methods']

DATA_BATCH = Any  # whatever the dataloader yields (dict / tuple / list)

# Mount point name -> the stage names used by ``get_triggered_stages``.
_STAGES = ('before_run', 'after_run', 'before_train', 'after_train', 'before_train_epoch',
           'after_train_epoch', 'before_train_iter', 'after_train_iter', 'before_val', 'after_val',
           'before_val_epoch', 'after_val_epoch', 'before_val_iter', 'after_val_iter', 'before_test',
           'after_test', 'before_test_epoch', 'after_test_epoch', 'before_test_iter', 'after_test_iter',
           'before_save_checkpoint', 'after_load_checkpoint')
_GENERIC = {'_before_epoch': ('before_train_epoch', 'before_val_epoch', 'before_test_epoch'),
            '_after_epoch': ('after_train_epoch', 'after_val_epoch', 'after_test_epoch'),
            '_before_iter': ('before_train_iter', 'before_val_iter', 'before_test_iter'),
            '_after_iter': ('after_train_iter', 'after_val_iter', 'after_test_iter')}


class Hook:
    """Base class of all hooks: override the mount points you need; every default does nothing.

    The Runner calls each mount point on every registered hook, in priority order (``priority`` class or
    instance attribute: a ``Priority`` name such as ``'NORMAL'`` or an int 0..100; smaller runs first), always
    passing the runner first and the other arguments by keyword:

    - ``before_run / after_run / before_train / after_train / before_val / after_val / before_test /
      after_test(runner)``
    - ``before_{train,val,test}_epoch(runner)``; ``after_train_epoch(runner)``;
      ``after_{val,test}_epoch(runner, metrics)`` (``metrics``: the evaluator's ``dict[str, Any]``)
    - ``before_{train,val,test}_iter(runner, batch_idx, data_batch)``;
      ``after_{train,val,test}_iter(runner, batch_idx, data_batch, outputs)`` (train ``outputs``: the
      ``dict[str, Tensor]`` of ``train_step``; val/test: the list of data samples of ``val_step``/``test_step``)
    - ``before_save_checkpoint(runner, checkpoint)`` (may add keys to the checkpoint dict) and
      ``after_load_checkpoint(runner, checkpoint)`` (may read or edit it before the weights are loaded).

    The per-mode mount points forward to ``_before_epoch / _after_epoch / _before_iter / _after_iter`` with
    ``mode='train'|'val'|'test'``, so a hook that treats all modes alike overrides those instead.

    Hooks that keep counters across a restart (best score, patience) return them from ``state_dict()``
    (plain containers only); the Runner saves that in the checkpoint's ``hooks`` entry and hands it back to
    ``load_state_dict()`` on resume.
    """

    priority: Any = 'NORMAL'

    # ----------------------------------------------------------------------------------------------- run
    def before_run(self, runner: Runner) -> None:
        """Once at the start of ``Runner.train/val/test``, after everything is built, before loading weights."""

    def after_run(self, runner: Runner) -> None:
        """Once at the end of ``Runner.train/val/test``."""

    def before_train(self, runner: Runner) -> None:
        """At the start of the train loop (after weights are loaded / resumed)."""

    def after_train(self, runner: Runner) -> None:
        """At the end of the train loop."""

    def before_val(self, runner: Runner) -> None:
        """At the start of every validation run."""

    def after_val(self, runner: Runner) -> None:
        """At the end of every validation run."""

    def before_test(self, runner: Runner) -> None:
        """At the start of the test loop."""

    def after_test(self, runner: Runner) -> None:
        """At the end of the test loop."""

    # --------------------------------------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Just before ``checkpoint`` (the dict about to be written) is saved."""

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Right after a checkpoint file is read, before its weights / states are applied."""

    # -------------------------------------------------------------------------------------------- epochs
    def before_train_epoch(self, runner: Runner) -> None:
        self._before_epoch(runner, mode='train')

    def before_val_epoch(self, runner: Runner) -> None:
        self._before_epoch(runner, mode='val')

    def before_test_epoch(self, runner: Runner) -> None:
        self._before_epoch(runner, mode='test')

    def after_train_epoch(self, runner: Runner) -> None:
        self._after_epoch(runner, mode='train')

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._after_epoch(runner, mode='val')

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._after_epoch(runner, mode='test')

    # --------------------------------------------------------------------------------------------- iters
    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode='train')

    def before_val_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode='val')

    def before_test_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode='test')

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: dict | None = None) -> None:
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode='train')

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                       outputs: Any = None) -> None:
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode='val')

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                        outputs: Any = None) -> None:
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode='test')

    # ------------------------------------------------------------------------------------------- generic
    def _before_epoch(self, runner: Runner, mode: str = 'train') -> None:
        """Called by ``before_{mode}_epoch``."""

    def _after_epoch(self, runner: Runner, mode: str = 'train') -> None:
        """Called by ``after_{mode}_epoch``."""

    def _before_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                     mode: str = 'train') -> None:
        """Called by ``before_{mode}_iter``."""

    def _after_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                    outputs: Any = None, mode: str = 'train') -> None:
        """Called by ``after_{mode}_iter``."""

    # ------------------------------------------------------------------------------------------- helpers
    def every_n_epochs(self, runner: Runner, n: int, start: int = 0) -> bool:
        """True when the epoch ending now (``runner.epoch + 1``, 1-based) is ``start + k * n`` for some k >= 0,
        i.e. ``(runner.epoch + 1 - start) % n == 0``; always False if ``n <= 0``."""
        done = runner.epoch + 1 - start
        return n > 0 and done >= 0 and done % n == 0

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        """True every ``n`` batches within an epoch: ``(batch_idx + 1) % n == 0``; False if n <= 0."""
        return n > 0 and (batch_idx + 1) % n == 0

    def every_n_train_iters(self, runner: Runner, n: int, start: int = 0) -> bool:
        """True every ``n`` training iterations counted over the whole run (``runner.iter + 1``, 1-based),
        from iteration ``start`` on; False if n <= 0."""
        done = runner.iter + 1 - start
        return n > 0 and done >= 0 and done % n == 0

    def end_of_epoch(self, dataloader: Sized, batch_idx: int) -> bool:
        """True on the last batch of ``dataloader`` (``batch_idx + 1 == len(dataloader)``)."""
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner: Runner) -> bool:
        """True during the last training epoch (``runner.epoch + 1 == runner.max_epochs``)."""
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner: Runner) -> bool:
        """True during the last training iteration (``runner.iter + 1 == runner.max_iters``)."""
        return runner.iter + 1 == runner.max_iters

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """State to keep across a restart (plain containers / tensors only). The base hook has none."""
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned."""

    def get_triggered_stages(self) -> list[str]:
        """Names of the mount points this hook overrides (directly or through the generic ``_before_epoch``
        style methods), in call order; used by the Runner to print which hook runs where."""
        stages = set()
        for name in _STAGES:
            if getattr(type(self), name) is not getattr(Hook, name):
                stages.add(name)
        for generic, names in _GENERIC.items():
            if getattr(type(self), generic) is not getattr(Hook, generic):
                stages.update(names)
        return [s for s in _STAGES if s in stages]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(priority={self.priority!r})'


def overrides(hook: Any, stage: str) -> bool:
    """Whether calling ``hook.<stage>`` can do anything: True when the hook's class overrides that mount point
    or the generic method it forwards to (``_before_iter`` for ``before_train_iter``...), or when the hook is
    not a ``Hook`` but has such a method (duck-typed hooks), or sets it on the instance."""
    if stage in getattr(hook, '__dict__', ()):
        return True
    if not isinstance(hook, Hook):
        return callable(getattr(hook, stage, None))
    cls = type(hook)
    if getattr(cls, stage, None) is not getattr(Hook, stage, None):
        return True
    generic = _GENERIC_OF.get(stage)
    return generic is not None and getattr(cls, generic) is not getattr(Hook, generic)


def stage_methods(hooks: Any, stage: str, runner: Any = None) -> list:
    """The bound ``<stage>`` methods of the ``hooks`` that override it (see :func:`overrides`), in order: call
    these instead of every hook's method, so hooks with nothing to do at a mount point cost nothing there.

    With ``runner`` given, a hook may also leave itself out for the coming epoch: a method
    ``idle_train_iter(runner, stage) -> bool`` (optional, kiln's extension) returning True says that its
    ``before_train_iter`` / ``after_train_iter`` has nothing to do until the train loop asks again (at the next
    epoch; once per run for iteration-based loops), e.g. a CheckpointHook that saves by epoch. It must answer
    from state that cannot change during the iterations it skips."""
    out = []
    for hook in hooks:
        if not overrides(hook, stage):
            continue
        idle = getattr(hook, 'idle_train_iter', None) if runner is not None else None
        if idle is not None and idle(runner, stage):
            continue
        out.append(getattr(hook, stage))
    return out


_GENERIC_OF = {stage: generic for generic, stages in _GENERIC.items() for stage in stages}
