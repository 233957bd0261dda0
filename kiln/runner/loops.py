"""Training, validation and test loops (MMEngine's loop classes and hook order), registered in ``LOOPS``."""
from __future__ import annotations

import bisect
import math
import os.path as osp
from typing import TYPE_CHECKING, Any, Iterator

import torch

from kiln.dataset.loader import get_sampler
from kiln.hooks.hook import stage_methods
from kiln.registry import LOOPS

from .val_loss import LossAverager, compute_batch_loss

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Runner

__all__ = ['BaseLoop', 'EpochBasedTrainLoop', 'IterBasedTrainLoop', 'ValLoop', 'TestLoop']


class BaseLoop:
    """A loop over one dataloader, driven by the runner.

    Args:
        runner: the Runner.
        dataloader: a DataLoader, or a dataloader config built with ``runner.build_dataloader`` (seeded with
            ``runner.seed``; ``randomness.diff_rank_seed`` is honoured).

    Subclasses implement ``run()``.
    """

    _dataloader_name = 'dataloader'

    def __init__(self, runner: Runner, dataloader: Any) -> None:
        self._runner = runner
        if isinstance(dataloader, dict):
            diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
            dataloader = runner.build_dataloader(dataloader, seed=runner.seed, diff_rank_seed=diff_rank_seed,
                                                 name=self._dataloader_name)
        self.dataloader = dataloader

    @property
    def runner(self) -> Runner:
        return self._runner

    def run(self) -> Any:
        raise NotImplementedError


class _TrainLoop(BaseLoop):
    """Counters, validation schedule, resume helpers and the finite-loss check shared by the two train loops.

    ``check_finite`` (``train_cfg`` key, default True): every 10 iterations (an int: every that many; counted
    over the run) and before every checkpoint the CheckpointHook writes, the loss terms of the latest
    ``train_step`` (and, before a checkpoint, the weights) are checked to be finite; otherwise training stops
    with ``FloatingPointError`` naming the iteration and the terms, and no checkpoint with NaN / inf is
    written (so rotation never removes the last finite one). One device sync per check, none in between.
    ``check_finite=False`` turns this off (training goes on with NaN losses, as MMEngine does).

    ``pending_validation``: set (by the CheckpointHook) when training resumes from a checkpoint written just
    before a validation that never finished; the loop then runs that validation first.
    """

    _dataloader_name = 'train_dataloader'
    by_epoch = True  # whether ``val_interval`` & co count epochs (True) or iterations
    _FINITE_INTERVAL = 10

    def __init__(self, runner: Runner, dataloader: Any, val_begin: int, val_interval: int,
                 dynamic_intervals: list[tuple[int, int]] | None, check_finite: bool | int = True) -> None:
        super().__init__(runner, dataloader)
        if isinstance(check_finite, bool) or check_finite is None:
            self._finite_interval = self._FINITE_INTERVAL if check_finite else 0
        elif isinstance(check_finite, int) and check_finite >= 0:
            self._finite_interval = check_finite
        else:
            raise ValueError(f'train_cfg.check_finite must be a bool or an int >= 0, got {check_finite!r}')
        self.check_finite = self._finite_interval > 0
        self.pending_validation = False
        self._outputs: Any = None
        self._iter_hooks: tuple[list, list] | None = None
        self.val_begin = val_begin
        self.val_interval = val_interval
        self._milestones = [0] + [int(m) for m, _ in (dynamic_intervals or [])]
        self._intervals = [val_interval] + [int(i) for _, i in (dynamic_intervals or [])]
        if self._milestones != sorted(self._milestones):
            raise ValueError(f'dynamic_intervals milestones must be increasing, got {dynamic_intervals}')
        self._epoch = 0
        self._iter = 0
        self._stage: str | None = None
        self.stop_training = False
        metainfo = getattr(getattr(self.dataloader, 'dataset', None), 'metainfo', None)
        if metainfo is not None:
            runner.visualizer.dataset_meta = metainfo

    @property
    def epoch(self) -> int:
        """Epochs completed so far (0-based index of the running epoch)."""
        return self._epoch

    @property
    def iter(self) -> int:
        """Iterations completed so far (0-based index of the running iteration)."""
        return self._iter

    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_iters

    def reset(self) -> None:
        """Start again from epoch 0 / iteration 0 (``Runner.train`` calls this; resume then sets the counters)."""
        self._epoch = 0
        self._iter = 0
        self._stage = None
        self.stop_training = False
        self.pending_validation = False
        self._outputs = None
        self.val_interval = self._intervals[0]

    def load_progress(self, epoch: int, iteration: int) -> None:
        """Continue from ``epoch`` completed epochs and ``iteration`` completed iterations (resume)."""
        self._epoch = int(epoch)
        self._iter = int(iteration)

    def progress(self) -> tuple[int, int]:
        """``(epoch, iter)`` to resume from if a checkpoint is written now: inside ``after_train_epoch`` the
        running epoch counts as done (epoch-based loops), inside ``after_train_iter`` the running iteration does."""
        if self._stage == 'epoch_end' and self.by_epoch:
            return self._epoch + 1, self._iter
        if self._stage == 'iter_end':
            return self._epoch, self._iter + 1
        return self._epoch, self._iter

    def _interval_at(self, done: int) -> int:
        if len(self._intervals) == 1:  # no dynamic intervals: honour a val_interval changed by the user
            return self.val_interval
        return self._intervals[bisect.bisect(self._milestones, done) - 1]

    def validates_after(self, done: int) -> bool:
        """Whether the loop validates once ``done`` epochs (``by_epoch``) or iterations are complete: from
        ``val_begin`` on, every ``val_interval`` (after ``dynamic_intervals``), and at the very end."""
        last = self._max_epochs if self.by_epoch else self._max_iters
        return (self.runner.val_loop is not None and done >= self.val_begin
                and (done % self._interval_at(done) == 0 or done == last))

    def _refresh_iter_hooks(self) -> None:
        """Look up, once per epoch (per run for iteration-based loops), which hooks override
        ``before_train_iter`` / ``after_train_iter`` and are not idle for now (``idle_train_iter``, see
        ``kiln.hooks.hook.stage_methods``), so the iterations call only those (a hook registered mid-epoch takes
        part from the next epoch). A Runner subclass with its own ``call_hook`` is always
        called through it."""
        from .runner import Runner
        runner = self.runner
        if getattr(type(runner), 'call_hook', None) is not Runner.call_hook:
            self._iter_hooks = None
            return
        hooks = runner.hooks
        self._iter_hooks = (stage_methods(hooks, 'before_train_iter', runner),
                            stage_methods(hooks, 'after_train_iter', runner))

    def run_iter(self, batch_idx: int, data_batch: Any) -> None:
        """One training iteration: ``before_train_iter`` -> ``model.train_step`` -> ``after_train_iter``."""
        runner = self._runner
        iter_hooks = self._iter_hooks
        if iter_hooks is None:
            runner.call_hook('before_train_iter', batch_idx=batch_idx, data_batch=data_batch)
        else:
            for method in iter_hooks[0]:
                method(runner, batch_idx=batch_idx, data_batch=data_batch)
        outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
        self._outputs = outputs
        self._stage = 'iter_end'
        if iter_hooks is None:
            runner.call_hook('after_train_iter', batch_idx=batch_idx, data_batch=data_batch, outputs=outputs)
        else:
            for method in iter_hooks[1]:
                method(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs)
        self._stage = None
        self._iter += 1
        if self._finite_interval and self._iter % self._finite_interval == 0:
            self.assert_finite()

    # ------------------------------------------------------------------------------- finite losses
    def assert_finite(self, state_dict: dict | None = None) -> None:
        """Raise ``FloatingPointError`` if a loss term of the latest ``train_step`` outputs (or, when given, a
        floating tensor of ``state_dict``, e.g. the weights about to be saved) is NaN or infinite. One device
        sync. Does nothing when ``check_finite`` is off.

        Raises:
            FloatingPointError: naming the iteration (1-based), the terms / tensors that are not finite, the
                last checkpoint on disk, and how to opt out (``train_cfg.check_finite=False``).
        """
        if not self._finite_interval:
            return
        outputs = self._outputs or {}
        total = outputs.get('loss')
        if state_dict is None and isinstance(total, torch.Tensor) and total.numel() == 1 \
                and math.isfinite(total.item()):
            return  # fast path: the total is the sum of every loss term, so all of them are finite
        terms = {k: v for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        bad: list[str] = []
        if terms:
            values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
            if not bool(torch.isfinite(values).all()):
                bad = [f'{k}={v}' for k, v in zip(terms, values.tolist()) if not math.isfinite(v)]
        if not bad and state_dict:
            tensors = {k: v for k, v in state_dict.items()
                       if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()}
            if tensors:
                flags = torch.stack([torch.isfinite(v).all() for v in tensors.values()])
                if not bool(flags.all()):
                    names = [k for k, ok in zip(tensors, flags.tolist()) if not ok]
                    bad = [f"weights {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"]
        if not bad:
            return
        done = self._iter + (1 if self._stage == 'iter_end' else 0)
        last = _last_checkpoint(self.runner)
        msg = (f'training stopped: not finite at iteration {done} (epoch {self._epoch + 1}): {", ".join(bad)}. '
               f'Lower the learning rate, clip gradients (optim_wrapper.clip_grad) or check the data. '
               + (f'The last checkpoint with finite values is {last}. ' if last else 'No checkpoint was written. ')
               + 'To train on anyway, set train_cfg.check_finite=False.')
        self.runner.logger.error(msg)
        raise FloatingPointError(msg)

    def _check_not_empty(self) -> None:
        """Raise ``ValueError`` when the train dataloader yields no batch (see ``_empty_reason``)."""
        try:
            n = len(self.dataloader)
        except TypeError:  # iterable-style loader: _endless / the epoch loop find out
            return
        if n == 0:
            raise ValueError(_empty_reason(self.dataloader))

    def _validate(self) -> None:
        """Run the val loop; when it fails, log and re-raise its error with a note naming where training stands
        and the checkpoint on disk (written before the validation started)."""
        try:
            self.runner.val_loop.run()
        except BaseException as e:
            where = f'epoch {self._epoch}' if self.by_epoch else f'iteration {self._iter}'
            last = _last_checkpoint(self.runner)
            note = (f'the validation after {where} failed ({type(e).__name__}: {e}); training stopped there. '
                    + (f'The last checkpoint is {last}: resume from it with resume=True.' if last
                       else 'No checkpoint was written.'))
            if isinstance(e, Exception):
                self.runner.logger.error(note)
            e.add_note(note)
            raise

    def _skip(self, n_batches: int) -> bool:
        """Make the next pass over the dataloader start ``n_batches`` in, by moving the sampler's ``position``
        (no data is loaded). Returns False when the sampler cannot skip."""
        if n_batches <= 0:
            return True
        sampler = get_sampler(self.dataloader)
        batch_size = getattr(self.dataloader, 'batch_size', None) or getattr(
            getattr(self.dataloader, 'batch_sampler', None), 'batch_size', None)
        if not hasattr(sampler, 'position') or not batch_size:
            return False
        sampler.position = n_batches * batch_size
        return True


@LOOPS.register_module()
class EpochBasedTrainLoop(_TrainLoop):
    """Train for ``max_epochs`` passes over the dataloader.

    Hook order: ``before_train``; per epoch ``before_train_epoch``, per batch ``before_train_iter`` ->
    ``model.train_step(data_batch, optim_wrapper)`` -> ``after_train_iter``, then ``after_train_epoch``;
    validation (``runner.val_loop.run()``) after epoch e (1-based) when ``e >= val_begin`` and
    ``e % val_interval == 0`` or e is the last epoch; ``after_train``. A hook may set ``stop_training``: the
    loop then leaves the epoch after the current iteration (``after_train_epoch`` still runs) and stops.

    Args:
        runner / dataloader: see ``BaseLoop``.
        max_epochs: number of epochs.
        val_begin: first epoch (1-based) that may be validated.
        val_interval: validate every this many epochs.
        dynamic_intervals: ``[(epoch, interval), ...]``: from that epoch on use that ``val_interval``.

    ``max_iters = max_epochs * len(dataloader)``. On resume mid-epoch the sampler skips the batches already
    seen (its ``position``), so the epoch continues exactly where it stopped.
    """

    def __init__(self, runner: Runner, dataloader: Any, max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1, dynamic_intervals: list[tuple[int, int]] | None = None,
                 check_finite: bool | int = True) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval, dynamic_intervals, check_finite)
        self._max_epochs = int(max_epochs)
        if self._max_epochs < 1 or self._max_epochs != max_epochs:
            raise ValueError(f'train_cfg.max_epochs must be a positive int, got {max_epochs!r}')

    @property
    def max_iters(self) -> int:
        return self._max_epochs * len(self.dataloader)

    def run(self) -> torch.nn.Module:
        """Run the remaining epochs; returns ``runner.model``."""
        runner = self.runner
        self._check_not_empty()
        runner.call_hook('before_train')
        if self.pending_validation and runner.val_loop is not None:
            self.pending_validation = False
            self._validate()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self.val_interval = self._interval_at(self._epoch)
            if self.validates_after(self._epoch):
                self._validate()
        runner.call_hook('after_train')
        return runner.model

    def run_epoch(self) -> None:
        """One epoch (or its remainder after a mid-epoch resume)."""
        runner = self.runner
        runner.call_hook('before_train_epoch')
        runner.model.train()
        self._refresh_iter_hooks()
        n_batches = len(self.dataloader)
        start = self._iter - self._epoch * n_batches
        start = start if 0 < start <= n_batches else 0
        if start == n_batches:
            # resumed from a checkpoint written on the epoch's last batch (e.g. killed in the validation that
            # followed): every batch is done, only the end of the epoch (hooks, validation) is left
            batches: Any = iter(())
            skipped = True
        else:
            skipped = self._skip(start)  # before iter(dataloader): workers start fetching at once
            batches = enumerate(self.dataloader, start=start)
        if start and not skipped:
            runner.logger.warning(f'resume: the sampler cannot skip, so {start} batches are loaded and dropped')
            batches = _drop(enumerate(self.dataloader), start)
        for idx, data_batch in batches:
            self.run_iter(idx, data_batch)
            if self.stop_training:
                break
        self._stage = 'epoch_end'
        runner.call_hook('after_train_epoch')
        self._stage = None
        self._epoch += 1


@LOOPS.register_module()
class IterBasedTrainLoop(_TrainLoop):
    """Train for ``max_iters`` iterations, cycling over the dataloader as often as needed.

    Hook order: ``before_train``, ``before_train_epoch`` (once), per iteration ``before_train_iter`` ->
    ``train_step`` -> ``after_train_iter`` and validation after iteration i (1-based) when ``i >= val_begin``
    and ``i % val_interval == 0`` or i is the last one; then ``after_train_epoch``, ``after_train``.
    ``stop_training`` is checked after every iteration. When a finite sampler is exhausted the next pass
    calls its ``set_epoch(n)``. ``max_epochs`` is 1, ``epoch`` stays 0.

    On resume the sampler skips the iterations already done (``set_epoch`` + ``position``), without loading
    data.
    """

    by_epoch = False

    def __init__(self, runner: Runner, dataloader: Any, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, dynamic_intervals: list[tuple[int, int]] | None = None,
                 check_finite: bool | int = True) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval, dynamic_intervals, check_finite)
        self._max_iters = int(max_iters)
        if self._max_iters < 1 or self._max_iters != max_iters:
            raise ValueError(f'train_cfg.max_iters must be a positive int, got {max_iters!r}')
        self._max_epochs = 1

    def run(self) -> torch.nn.Module:
        """Run the remaining iterations; returns ``runner.model``."""
        runner = self.runner
        self._check_not_empty()
        runner.call_hook('before_train')
        if self.pending_validation and runner.val_loop is not None:
            self.pending_validation = False
            self._validate()
        runner.call_hook('before_train_epoch')
        self._refresh_iter_hooks()
        batches = self._data_iterator()
        while self._iter < self._max_iters and not self.stop_training:
            runner.model.train()
            data_batch = next(batches)
            self.run_iter(self._iter, data_batch)
            self.val_interval = self._interval_at(self._iter)
            if self.validates_after(self._iter):
                self._validate()
        self._stage = 'epoch_end'
        runner.call_hook('after_train_epoch')
        self._stage = None
        runner.call_hook('after_train')
        return runner.model

    def _data_iterator(self) -> Iterator[Any]:
        """Endless batches, starting after the ``self._iter`` batches already trained on."""
        sampler = get_sampler(self.dataloader)
        done, data_epoch = self._iter, 0
        if done:
            finite = hasattr(sampler, 'state_dict') and 'epoch' in sampler.state_dict()
            try:
                length = len(self.dataloader)
            except TypeError:
                length = 0
            if finite and length:
                data_epoch, done = divmod(done, length)
                sampler.set_epoch(data_epoch)
            if not self._skip(done):
                self.runner.logger.warning(f'resume: the sampler cannot skip, so {done} batches are loaded '
                                           'and dropped')
                return _drop(_endless(self.dataloader, sampler, data_epoch), done)
        return _endless(self.dataloader, sampler, data_epoch)


def _endless(dataloader: Any, sampler: Any, epoch: int) -> Iterator[Any]:
    while True:
        n = 0
        for batch in dataloader:
            n += 1
            yield batch
        if n == 0:
            raise RuntimeError('train_dataloader yielded no batch (empty dataset, or drop_last with fewer samples '
                               'than batch_size)')
        epoch += 1
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)


def _empty_reason(dataloader: Any) -> str:
    """Why ``dataloader`` yields no batch, naming its dataset, ``ann_file`` and ``filter_cfg`` when known."""
    dataset = getattr(dataloader, 'dataset', None)
    name = type(dataset).__name__
    try:
        n = len(dataset)
    except TypeError:
        n = None
    if n:  # samples exist, but no batch is made from them (drop_last with fewer samples than batch_size)
        batch_size = getattr(dataloader, 'batch_size', None)
        return (f'train_dataloader yields no batch: {name} has {n} samples, fewer than batch_size={batch_size} '
                'with drop_last=True (lower batch_size or set drop_last=False)')
    details = []
    full = getattr(dataset, '_full_data_list', None)
    if full:
        details.append(f'{len(full)} records were loaded and every one was dropped by filter_data')
    for key in ('ann_file', 'data_root', 'filter_cfg', 'indices'):
        value = getattr(dataset, key, None)
        if value not in (None, '', {}):
            details.append(f'{key}={value!r}')
    hint = ('; check the annotation file, the data prefixes and filter_cfg (e.g. filter_empty_gt, min_size) or '
            'the classes in metainfo')
    return (f'train_dataloader has no data: the dataset {name} has length 0 after loading and filtering'
            + (f" ({'; '.join(details)})" if details else '') + hint)


def _last_checkpoint(runner: Any) -> str | None:
    """The path recorded in ``work_dir/last_checkpoint`` (None when there is none)."""
    try:
        with open(osp.join(runner.work_dir, 'last_checkpoint'), encoding='utf-8') as f:
            return f.read().strip() or None
    except OSError:
        return None


def _drop(iterator: Iterator[Any], n: int) -> Iterator[Any]:
    for _ in range(n):
        next(iterator)
    return iterator


class _EvalLoop(BaseLoop):
    """Shared body of ValLoop and TestLoop: ``mode`` is ``'val'`` or ``'test'``."""

    mode = 'val'

    def __init__(self, runner: Runner, dataloader: Any, evaluator: Any, fp16: bool = False,
                 compute_loss: bool = False) -> None:
        super().__init__(runner, dataloader)
        self.compute_loss = compute_loss
        self._loss_averager = None
        if evaluator is None and not compute_loss:
            raise ValueError(f'{self.mode}_evaluator is required when {self.mode}_dataloader is set '
                             f"(e.g. {self.mode}_evaluator=dict(type='CocoMetric', ...)), unless "
                             f'{self.mode}_cfg has compute_loss=True')
        self.evaluator = runner.build_evaluator(evaluator if evaluator is not None else [])  # [] -> loss only
        self.evaluator.logger = runner.logger
        metainfo = getattr(getattr(self.dataloader, 'dataset', None), 'metainfo', None)
        if metainfo is not None:
            self.evaluator.dataset_meta = metainfo
            runner.visualizer.dataset_meta = metainfo
        else:
            runner.logger.warning(f'the {self.mode} dataset has no metainfo: metrics and visualizer get no '
                                  'dataset_meta')
        self.fp16 = fp16

    def run(self) -> dict[str, Any]:
        """Evaluate the whole dataloader; returns the metrics dict (e.g. ``{'coco/bbox_mAP': 0.41}``)."""
        runner, mode = self.runner, self.mode
        model = runner.model
        was_training = model.training
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        model.eval()
        self._loss_averager = LossAverager() if self.compute_loss else None
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        if self._loss_averager is not None:  # f'{mode}/loss' and each term, averaged over the samples
            metrics = {**metrics, **self._loss_averager.compute(prefix=f'{mode}/')}
        runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        runner.call_hook(f'after_{mode}')
        model.train(was_training)
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Any) -> None:
        """``before_{mode}_iter`` -> ``model.{mode}_step`` (autocast when ``fp16``) -> ``evaluator.process``
        -> ``after_{mode}_iter``."""
        runner, mode = self.runner, self.mode
        runner.call_hook(f'before_{mode}_iter', batch_idx=idx, data_batch=data_batch)
        with _autocast(runner.model, self.fp16):
            outputs = getattr(runner.model, f'{mode}_step')(data_batch)
            if self._loss_averager is not None:
                self._loss_averager.update(*compute_batch_loss(runner.model, data_batch))
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        runner.call_hook(f'after_{mode}_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)


def _autocast(model: torch.nn.Module, enabled: bool) -> Any:
    try:
        device = next(model.parameters()).device.type
    except StopIteration:
        device = 'cpu'
    dtype = torch.float16 if device == 'cuda' else torch.bfloat16
    return torch.autocast(device_type=device, dtype=dtype, enabled=enabled)


@LOOPS.register_module()
class ValLoop(_EvalLoop):
    """One pass over the validation dataloader (MMEngine's ValLoop).

    Hook order: ``before_val``, ``before_val_epoch``, per batch ``before_val_iter`` -> ``model.val_step`` ->
    ``evaluator.process(data_samples=outputs, data_batch=data_batch)`` -> ``after_val_iter``; then
    ``metrics = evaluator.evaluate(len(dataset))``, ``after_val_epoch(metrics=metrics)``, ``after_val``.
    The model runs in eval mode under ``torch.no_grad`` (autocast when ``fp16``) and gets its previous mode back.
    The evaluator and the visualizer receive the dataset's ``metainfo`` as ``dataset_meta``.

    Args:
        runner / dataloader: see ``BaseLoop``.
        evaluator: an Evaluator, or metric config(s) built with ``runner.build_evaluator``.
        fp16: run ``val_step`` under autocast (float16 on CUDA, bfloat16 on CPU).
        compute_loss: also run the model in loss mode on every batch (no gradients; normalisation and dropout
            layers in eval mode, see ``kiln.runner.val_loss.loss_mode``) and add ``val/loss`` and each
            ``val/<term>`` (averaged over the samples, weighted by batch size) to the metrics, so hooks can
            monitor them (``EarlyStoppingHook(monitor='val/loss')``, ``CheckpointHook(save_best='val/loss')``).
            The validation pipeline must load the annotations. With ``compute_loss`` the evaluator is optional
            (the metrics are then the losses only).

    Raises:
        ValueError: ``evaluator`` is None (and no ``compute_loss``).
    """

    mode = 'val'
    _dataloader_name = 'val_dataloader'


@LOOPS.register_module()
class TestLoop(_EvalLoop):
    """One pass over the test dataloader: like ``ValLoop`` with ``test`` hooks and ``model.test_step``."""

    mode = 'test'
    _dataloader_name = 'test_dataloader'

