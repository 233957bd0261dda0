"""The Runner: keeps the parts of a run together and drives training, validation and testing.

The Runner is the one owner of a run's state (as Detectron2's ``TrainerBase``): it alone assigns its attributes,
``state_dict()`` / ``load_state_dict()`` give and take everything a restart needs, and every part is built through
an overridable ``build_*`` method. Helpers compute for it: ``builders.py`` (config -> object), ``state.py``
(checkpoint parts), ``session.py`` (reuse across experiments), ``env.py`` (process set-up); the loops live in
``loops.py``, checkpoint files in :mod:`kiln.checkpoint`, dataloaders in :mod:`kiln.dataset`. Reference:
MMEngine's ``Runner`` (same arguments and config keys).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import functools
import logging
import os
import os.path as osp
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kiln.checkpoint import find_latest_checkpoint, get_state_dict, read_checkpoint, to_weights_only, weights_to_cpu
from kiln.checkpoint import save_checkpoint as _save_checkpoint
from kiln.config import Config
from kiln.dataset import build_dataloader, get_sampler
from kiln.dist import get_dist_info, is_main_process, rank_log_files
from kiln.logging import MessageHub, close_logger, describe_exception, get_logger
from kiln.logging.current import scoped
from kiln.logging.progress import ProgressHook  # noqa: F401  (registers the default `progress` hook)
from kiln.model.wrappers import broadcast_module_state, needs_all_ranks_to_save, unwrap_model
from kiln.registry import RUNNERS, init_default_scope

from . import builders as B
from . import session as S
from .env import get_rng_state, make_timestamp, set_random_seed, set_rng_state, setup_env
from .model_options import apply_model_options
from .priority import get_priority
from .startup import hooks_info, log_start
from .state import (apply_weights, check_training_checkpoint, dataset_meta, hook_states, load_hook_states,
                    load_scheduler_states, scheduler_states)

__all__ = ['Runner']

_DEFAULT_HOOKS = dict(runtime_info=dict(type='RuntimeInfoHook'), timer=dict(type='IterTimerHook'),
                      sampler_seed=dict(type='DistSamplerSeedHook'), logger=dict(type='LoggerHook'),
                      param_scheduler=dict(type='ParamSchedulerHook'),
                      checkpoint=dict(type='CheckpointHook', interval=1),
                      stop_file=dict(type='StopFileHook'),  # `touch work_dir/STOP` (or kiln eval-watch) ends training
                      progress=dict(type='ProgressHook'))  # val/test bar on a terminal; nothing otherwise


@dataclass
class _WeightsSource:
    """Where the weights of the next ``train()`` / ``val()`` / ``test()`` come from, and what is already done."""

    load_from: str | None  # checkpoint whose weights are loaded (``load_from``)
    resume: bool | str  # ``resume``: True (work_dir/last_checkpoint, or load_from) or a path
    loaded: bool = False  # a checkpoint was loaded: do not load / resume again
    ready_model: nn.Module | None = None  # the unwrapped model whose weights are set (initialised or loaded)
    train_calls: int = 0  # how many times train() ran (a second call resets the loop counters)


class _LogMemo(logging.Filter):
    """Remembers the last ERROR and WARNING messages of a runner's logger (never filters anything out), so that
    :func:`_errors_logged` does not log an error a second time that a loop or hook has already logged, and
    :func:`_build_warnings_logged` does not log a warning again that is already in the log (the same annotation
    file read for train and val, a warning the caller logged before the Runner built the data)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: collections.deque[str] = collections.deque(maxlen=16)
        self.warnings: collections.deque[str] = collections.deque(maxlen=256)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.messages.append(record.getMessage())
        elif record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())
        return True

    def seen(self, exc: BaseException) -> bool:
        """Whether the message of ``exc`` (or one of its notes) is part of an ERROR already logged."""
        texts = [t for t in [str(exc), *getattr(exc, '__notes__', ())] if t]
        return bool(texts) and any(t in m for t in texts for m in self.messages)

    def warned(self, text: str) -> bool:
        """Whether ``text`` is part of a WARNING already logged (among the last 256)."""
        return bool(text) and any(text in m for m in self.warnings)


def _errors_logged(method: Callable) -> Callable:
    """Decorate ``Runner.train`` / ``val`` / ``test``: an ``Exception`` escaping them (a dataset or model that
    cannot be built, an empty training set, a bad sample...) is logged at ERROR through the runner's logger, so
    it is in the run's log file and not only on stderr, with its type, message, notes and the place it was raised,
    then re-raised unchanged. Errors that a loop or hook has already logged are not logged twice."""

    @functools.wraps(method)
    def wrapper(self: Runner, *args: Any, **kwargs: Any) -> Any:
        with _logging_failure(self, method.__name__):
            return method(self, *args, **kwargs)
    return wrapper


@contextlib.contextmanager
def _logging_failure(runner: Runner, what: str) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        if not runner._log_memo.seen(e):
            runner.logger.error(f'{what} failed: {describe_exception(e)}')
        raise


@contextlib.contextmanager
def _build_warnings_logged(runner: Runner, stage: str) -> Iterator[None]:
    """Around the building of the ``stage`` loop (its dataset, sampler, dataloader, evaluator): the Python
    warnings raised meanwhile (dropped boxes, class names not in ``classes``, sizes that differ from the images,
    what a user's dataset warns about...) are not printed by Python but logged once, in the order raised, at
    WARNING through the runner's logger as ``<stage> data: <message>`` (the category is named unless it is a
    plain ``UserWarning``), so they are on the terminal once and in the run's log file. They are logged whether
    the build succeeds or raises, before the error that :func:`_errors_logged` logs. Python's warning filters
    apply as usual (an ``ignore`` filter keeps a warning out of the log too). A message already logged (the
    same annotation file read for train and val) is not logged again; ``DataCheckHook`` does not repeat them.
    With a ``log_level`` above WARNING they are issued again as Python warnings instead."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:
        for w in caught:
            text = str(w.message)
            if not runner.logger.isEnabledFor(logging.WARNING):  # log_level='ERROR': Python shows it as usual
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            elif not runner._log_memo.warned(text):
                kind = '' if w.category is UserWarning else f'{w.category.__name__}: '
                runner.logger.warning(f'{stage} data: {kind}{text}')


@RUNNERS.register_module()
class Runner:
    """Train, validate and test a model (MMEngine's ``Runner``, same keywords).

    Every part may be given as a built object or as a config dict; heavy parts (model, dataloaders, optimizer,
    schedulers, loops) are built on first use, so creating a Runner only sets up the work dir, logger, message
    hub, visualizer and hooks. ``train()`` builds the model (``init_weights()`` once; skipped when resuming),
    moves it to CUDA if available, wraps it in DDP when distributed, builds the train loop and its dataloader,
    the optimizer wrapper (``auto_scale_lr`` applied), the schedulers (epoch-based ones with
    ``convert_to_iter_based`` use ``len(train_dataloader)``), the val loop, calls ``before_run``, loads
    ``load_from`` or resumes, runs the loop and calls ``after_run``. It may be called again: the next call
    trains again from the current weights (fresh loop counters, optimizer and schedulers from their configs).
    Python warnings raised while a loop and its data are built (a dataset dropping boxes, ...) are logged through
    the runner's logger (terminal and log file, once each) as ``<stage> data: <message>``; an exception escaping
    ``train()`` / ``val()`` / ``test()`` is logged at ERROR in the log file too.

    Args:
        model: ``nn.Module`` (a kiln ``BaseModel``) or config for MODELS.
        work_dir: output directory: checkpoints, ``last_checkpoint``, the dumped config, and
            ``<timestamp>/<timestamp>.log`` + ``<timestamp>/vis_data/`` (``log_dir``).
        train_dataloader / val_dataloader / test_dataloader: DataLoader or config (see
            ``builders.build_dataloader``).
        train_cfg: ``dict(by_epoch=True, max_epochs=12, val_begin=1, val_interval=1)`` or
            ``dict(by_epoch=False, max_iters=..., val_interval=...)`` or ``dict(type=<loop>, ...)``.
        val_cfg / test_cfg: ``dict()`` or ``dict(type=..., fp16=False)``.
        auto_scale_lr: ``dict(enable=False, base_batch_size=16)``: linear LR scaling by the total batch size.
        optim_wrapper: OptimWrapper or config, e.g. ``dict(optimizer=dict(type='SGD', lr=0.01))``.
        param_scheduler: scheduler(s) or config(s).
        val_evaluator / test_evaluator: Evaluator, metric config(s), or ``dict(type='Evaluator', metrics=...)``.
        default_hooks: ``{name: cfg | Hook | None}`` merged over the defaults (runtime_info, timer, sampler_seed,
            logger, param_scheduler, checkpoint, stop_file, progress); None disables a default hook
            (``progress=None``: no val/test progress bar); extra names are added.
        custom_hooks: list of hook configs / hooks (``priority`` key optional, default NORMAL).
        data_preprocessor: default ``data_preprocessor`` of a model config.
        load_from: checkpoint whose weights are loaded before running.
        resume: True: resume from ``work_dir/last_checkpoint`` (or from ``load_from`` when set, as MMEngine);
            a path: resume from that file. Resuming restores weights, optimizer, schedulers, message hub, hook
            states, RNG states and the loop position.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``. Distributed runs wrap the model per
            ``model_wrapper_cfg`` (default DDP; ``dict(type='FSDP')``), honour the config keys
            ``find_unused_parameters`` and ``sync_bn``, and write files on rank 0 only (docs/distributed.md).
        env_cfg: ``dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'), dist_cfg=dict(backend=
            'nccl'))``.
        log_processor: LogProcessor or config. log_level: ``'INFO'``, ``'DEBUG'``... (``'DEBUG'``, or the config
            key ``log_cfg=dict(distributed=True)``, makes every rank write its own log file; docs/distributed.md).
        visualizer: Visualizer or config (default ``Visualizer`` with a ``LocalVisBackend``).
        default_scope: registry scope, e.g. ``'kiln.det'`` (``kiln.registry.init_default_scope`` imports it).
        randomness: ``dict(seed=None | int, diff_rank_seed=False, deterministic=False)``.
        experiment_name: default ``<config name>_<timestamp>`` or ``<timestamp>``.
        cfg: the full config (dumped to the work dir, logged and stored in checkpoints). Its ``compile`` (True
            or a dict of ``torch.compile`` arguments) and ``activation_checkpointing`` (submodule names) keys
            are applied to the model when it is built (``kiln.runner.model_options``).

    Raises:
        RuntimeError: ``train()`` / ``val()`` / ``test()`` without the parts they need (the message says which).
    """

    def __init__(self, model: nn.Module | dict, work_dir: str, train_dataloader: Any = None,
                 val_dataloader: Any = None, test_dataloader: Any = None, train_cfg: dict | None = None,
                 val_cfg: dict | None = None, test_cfg: dict | None = None, auto_scale_lr: dict | None = None,
                 optim_wrapper: Any = None, param_scheduler: Any = None, val_evaluator: Any = None,
                 test_evaluator: Any = None, default_hooks: dict | None = None, custom_hooks: list | None = None,
                 data_preprocessor: dict | None = None, load_from: str | None = None, resume: bool | str = False,
                 launcher: str = 'none', env_cfg: dict = dict(dist_cfg=dict(backend='nccl')),
                 log_processor: Any = None, log_level: str = 'INFO', visualizer: Any = None,
                 default_scope: str | None = 'kiln', randomness: dict | None = dict(seed=None),
                 experiment_name: str | None = None, cfg: Config | dict | None = None) -> None:
        self._work_dir = osp.abspath(work_dir)
        os.makedirs(self._work_dir, exist_ok=True)
        self.cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg or {})))
        self._model_src, self._model, self._data_preprocessor = model, None, data_preprocessor
        self._train_dataloader_src, self._train_cfg, self._train_loop = train_dataloader, train_cfg, None
        self._val_dataloader_src, self._val_cfg, self._val_evaluator, self._val_loop = (
            val_dataloader, val_cfg, val_evaluator, None)
        self._test_dataloader_src, self._test_cfg, self._test_evaluator, self._test_loop = (
            test_dataloader, test_cfg, test_evaluator, None)
        self.optim_wrapper = optim_wrapper
        self.param_schedulers = param_scheduler
        self._auto_scale_lr = auto_scale_lr
        self._source = _WeightsSource(load_from, resume)
        self._launcher = launcher
        self._randomness_cfg = dict(randomness or {})

        init_default_scope(default_scope)
        self._distributed = setup_env(env_cfg, launcher)
        self._rank, self._world_size = get_dist_info()
        self._seed = set_random_seed(**self._randomness_cfg)
        self._timestamp = make_timestamp()
        if experiment_name is None:
            stem = osp.splitext(osp.basename(self.cfg.filename))[0] if self.cfg.filename else None
            experiment_name = f'{stem}_{self._timestamp}' if stem else self._timestamp
        self._experiment_name = experiment_name
        self._log_dir = osp.join(self._work_dir, self._timestamp)
        self._logger = get_logger('kiln', log_file=osp.join(self._log_dir, f'{self._timestamp}.log'),
                                  log_level=log_level, distributed=rank_log_files(log_level, self.cfg))
        self._log_memo = _LogMemo()
        self._logger.addFilter(self._log_memo)
        self.message_hub = MessageHub(name=experiment_name)
        self._visualizer_cfg, self._log_level = visualizer, log_level  # for new_session()
        self.visualizer = self.build_visualizer(visualizer)
        self.log_processor = self.build_log_processor(log_processor)
        self._hooks: list[Any] = []
        self.register_default_hooks(default_hooks)
        self.register_custom_hooks(custom_hooks)
        log_start(self)

    @classmethod
    def from_cfg(cls, cfg: Config | dict) -> Runner:
        """Build a Runner from a full config (keys as the ``__init__`` arguments; ``model`` and ``work_dir``
        are required).

        Raises:
            KeyError: ``model`` or ``work_dir`` missing.
        """
        for key in ('model', 'work_dir'):
            if key not in cfg:
                raise KeyError(f'Runner.from_cfg: the config has no {key!r} (set it in the config, or for '
                               'work_dir pass --work-dir)')
        get = cfg.get
        return cls(model=cfg['model'], work_dir=cfg['work_dir'], train_dataloader=get('train_dataloader'),
                   val_dataloader=get('val_dataloader'), test_dataloader=get('test_dataloader'),
                   train_cfg=get('train_cfg'), val_cfg=get('val_cfg'), test_cfg=get('test_cfg'),
                   auto_scale_lr=get('auto_scale_lr'), optim_wrapper=get('optim_wrapper'),
                   param_scheduler=get('param_scheduler'), val_evaluator=get('val_evaluator'),
                   test_evaluator=get('test_evaluator'), default_hooks=get('default_hooks'),
                   custom_hooks=get('custom_hooks'), data_preprocessor=get('data_preprocessor'),
                   load_from=get('load_from'), resume=get('resume', False), launcher=get('launcher', 'none'),
                   env_cfg=get('env_cfg', dict(dist_cfg=dict(backend='nccl'))),
                   log_processor=get('log_processor'), log_level=get('log_level', 'INFO'),
                   visualizer=get('visualizer'), default_scope=get('default_scope', 'kiln'),
                   randomness=get('randomness', dict(seed=None)), experiment_name=get('experiment_name'),
                   cfg=cfg)

    # ------------------------------------------------------------------------------------- properties
    @property
    def work_dir(self) -> str:
        """Absolute output directory. Settable between experiments: checkpoints and ``last_checkpoint`` go to the
        new directory (created) from then on; the log stays where it is until the next ``new_session()``,
        whose log dir is ``work_dir/<timestamp>``."""
        return self._work_dir

    @work_dir.setter
    def work_dir(self, work_dir: str | os.PathLike) -> None:
        self._work_dir = osp.abspath(os.fspath(work_dir))
        os.makedirs(self._work_dir, exist_ok=True)

    def has_logged_warning(self, text: str) -> bool:
        """Whether ``text`` is part of a WARNING this runner's logger has written (among the last 256): hooks
        that copy data warnings into the log (``DataCheckHook``) skip what the Runner already logged."""
        return self._log_memo.warned(text)

    @property
    def log_dir(self) -> str:
        """``work_dir/<timestamp>``: text log and vis_data (setting it starts a new session writing there)."""
        return self._log_dir

    @log_dir.setter
    def log_dir(self, log_dir: str | os.PathLike) -> None:
        self.new_session(log_dir=log_dir)

    timestamp = property(lambda self: self._timestamp, doc='``YYYYmmdd_HHMMSS`` of this run.')
    experiment_name = property(lambda self: self._experiment_name)
    logger = property(lambda self: self._logger, doc="This runner's ``logging.Logger``.")
    seed = property(lambda self: self._seed, doc='The random seed in use.')
    # read-only, MMEngine's names (its EMAHook and user hooks read ``runner._resume`` / ``runner._load_from``)
    _resume = property(lambda self: self._source.resume, doc='The ``resume`` argument.')
    _load_from = property(lambda self: self._source.load_from, doc='The ``load_from`` argument.')
    randomness = property(lambda self: dict(self._randomness_cfg),
                          doc='A copy of the ``randomness`` settings (``seed``, ``diff_rank_seed``, ...).')
    launcher = property(lambda self: self._launcher)
    distributed = property(lambda self: self._distributed)
    rank = property(lambda self: self._rank)
    world_size = property(lambda self: self._world_size)
    hooks = property(lambda self: list(self._hooks), doc='Registered hooks in call (priority) order.')
    epoch = property(lambda self: self._train_loop.epoch if self._train_loop is not None else 0,
                     doc='Epochs completed (0 before training).')
    iter = property(lambda self: self._train_loop.iter if self._train_loop is not None else 0,
                    doc='Training iterations completed (0 before training).')
    max_epochs = property(lambda self: self._train_loop.max_epochs if self._train_loop is not None else None)
    max_iters = property(lambda self: self._train_loop.max_iters if self._train_loop is not None else None)

    @property
    def model(self) -> nn.Module:
        """The model: built from its config on first access, moved to the device and wrapped (DDP)."""
        if self._model is None:
            model = apply_model_options(self.build_model(self._model_src), self.cfg, self.logger)
            self._model = self.wrap_model(self.cfg.get('model_wrapper_cfg'), model)
        return self._model

    @model.setter
    def model(self, model: nn.Module) -> None:
        self._model = model

    @property
    def optim_wrapper(self) -> Any:
        """The optimizer wrapper (None until ``train()`` builds it from a config)."""
        return self._optim_wrapper

    @optim_wrapper.setter
    def optim_wrapper(self, value: Any) -> None:
        self._optim_wrapper_src = value
        self._optim_wrapper = None if isinstance(value, dict) else value

    @property
    def param_schedulers(self) -> Any:
        """The parameter schedulers (list, or dict of lists; None until ``train()`` builds them)."""
        return self._param_schedulers

    @param_schedulers.setter
    def param_schedulers(self, value: Any) -> None:
        self._param_scheduler_src = value
        built = value is not None and not isinstance(value, dict) and not (
            isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value))
        self._param_schedulers = (list(value) if isinstance(value, (list, tuple)) else [value]) if built else None

    @property
    def train_loop(self) -> Any:
        """The train loop (built with its dataloader on first access).

        Raises:
            RuntimeError: no ``train_dataloader`` or ``train_cfg``.
        """
        if self._train_loop is None:
            if self._train_dataloader_src is None or self._train_cfg is None:
                raise RuntimeError('training needs both train_dataloader and train_cfg (e.g. '
                                   'train_cfg=dict(by_epoch=True, max_epochs=12))')
            with _build_warnings_logged(self, 'train'):
                self._train_loop = self.build_train_loop(self._train_cfg)
        return self._train_loop

    @property
    def val_loop(self) -> Any:
        """The val loop, or None when there is no ``val_dataloader``."""
        if self._val_loop is None and self._val_dataloader_src is not None:
            with _build_warnings_logged(self, 'val'):
                self._val_loop = self.build_val_loop(self._val_cfg or {})
        return self._val_loop

    @property
    def test_loop(self) -> Any:
        """The test loop, or None when there is no ``test_dataloader``."""
        if self._test_loop is None and self._test_dataloader_src is not None:
            with _build_warnings_logged(self, 'test'):
                self._test_loop = self.build_test_loop(self._test_cfg or {})
        return self._test_loop

    train_dataloader = property(lambda self: self.train_loop.dataloader)
    val_dataloader = property(lambda self: _require(self.val_loop, 'val_dataloader').dataloader)
    test_dataloader = property(lambda self: _require(self.test_loop, 'test_dataloader').dataloader)

    # -------------------------------------------------------------------------------------- running
    @scoped  # MessageHub / MMLogger / Visualizer.get_current_instance() return this runner's parts
    @_errors_logged
    def train(self) -> nn.Module:
        """Train (see the class docstring for the order of the steps); returns the model.

        Raises:
            RuntimeError: missing ``train_dataloader`` / ``train_cfg`` / ``optim_wrapper``.
        """
        if self._optim_wrapper_src is None:
            raise RuntimeError('training needs an optim_wrapper (e.g. optim_wrapper=dict(optimizer=dict('
                               "type='SGD', lr=0.01)))")
        model = self.model
        source = self._source
        resume_from = None if source.loaded else self._resume_path()
        if resume_from is None:
            self._init_model_weights()
        loop = self.train_loop
        if source.train_calls:
            loop.reset()
        source.train_calls += 1
        self._optim_wrapper = self.build_optim_wrapper(self._optim_wrapper_src)
        batch_size = getattr(loop.dataloader, 'batch_size', None) or getattr(
            getattr(loop.dataloader, 'batch_sampler', None), 'batch_size', 1)
        B.scale_lr(self._optim_wrapper, self._auto_scale_lr, batch_size, self.world_size, self.logger)
        self._param_schedulers = self.build_param_scheduler(self._param_scheduler_src)
        self.val_loop  # noqa: B018  (build it now so that configuration errors show before training)
        self.call_hook('before_run')
        if resume_from is not None:
            self.resume(resume_from)
        elif not source.loaded and source.load_from:
            self.load_checkpoint(source.load_from)
        self._optim_wrapper.initialize_count_status(unwrap_model(model), loop.iter, loop.max_iters)
        model = loop.run()
        self.call_hook('after_run')
        return model

    @scoped
    @_errors_logged
    def val(self) -> dict:
        """Run the val loop once (weights from ``load_from``/``resume`` if set); returns the metrics dict."""
        return self._evaluate(_require(self.val_loop, 'val_dataloader and val_evaluator'))

    @scoped
    @_errors_logged
    def test(self) -> dict:
        """Run the test loop once (weights from ``load_from``/``resume`` if set); returns the metrics dict."""
        return self._evaluate(_require(self.test_loop, 'test_dataloader and test_evaluator'))

    def _evaluate(self, loop: Any) -> dict:
        self.model  # noqa: B018
        self.call_hook('before_run')
        source = self._source
        path = None if source.loaded else (self._resume_path() or source.load_from)
        if path:
            self.load_checkpoint(path)
            source.loaded = not source.resume  # a later train() still resumes fully
        metrics = loop.run()
        self.call_hook('after_run')
        return metrics

    def _resume_path(self) -> str | None:
        source = self._source
        if not source.resume:
            return None
        if isinstance(source.resume, str):
            return source.resume
        if source.load_from:
            return source.load_from
        path = find_latest_checkpoint(self._work_dir)
        if path is None:
            self.logger.warning(f'resume=True but {self._work_dir} has no last_checkpoint: training from scratch')
        return path

    def _init_model_weights(self) -> None:
        model = unwrap_model(self.model)
        if self._source.ready_model is model:
            return
        if hasattr(model, 'init_weights') and not getattr(model, 'is_init', False):  # (FSDP initialises first)
            model.init_weights()
            if hasattr(model, 'format_init_report') and self.logger.isEnabledFor(logging.DEBUG):  # (BaseModule)
                self.logger.debug('Parameter initialisation:\n' + model.format_init_report())
            broadcast_module_state(model)  # distributed: every rank starts from rank 0's weights
        self._source.ready_model = model

    # ---------------------------------------------------------------------------------------- hooks
    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``hook.<fn_name>(self, **kwargs)`` on every registered hook, in priority order."""
        for hook in self._hooks:
            method = getattr(hook, fn_name, None)
            if method is not None:
                method(self, **kwargs)

    def register_hook(self, hook: Any, priority: int | str | None = None) -> None:
        """Add a hook (object or config; ``priority`` overrides its own) after every registered hook of the same
        or higher priority.

        Raises:
            KeyError / ValueError: invalid priority (see ``get_priority``).
        """
        hook = B.build_hook(hook, priority)
        level = get_priority(hook.priority)
        index = len(self._hooks)
        while index > 0 and get_priority(self._hooks[index - 1].priority) > level:
            index -= 1
        self._hooks.insert(index, hook)

    def register_default_hooks(self, hooks: dict | None = None) -> None:
        """Register the default hooks, each replaced by ``hooks[name]`` when given (None removes it); other
        names in ``hooks`` are registered too (e.g. ``visualization``)."""
        merged = dict(_DEFAULT_HOOKS)
        merged.update(hooks or {})
        for hook in merged.values():
            if hook is not None:
                self.register_hook(hook)

    def register_custom_hooks(self, hooks: list | None) -> None:
        """Register each hook config / object of ``hooks``."""
        for hook in hooks or []:
            self.register_hook(hook)

    def get_hooks_info(self) -> str:
        """Which hook runs at which mount point, in call order (logged at start)."""
        return hooks_info(self._hooks)

    # ----------------------------------------------------------------------------- state (checkpoints)
    def state_dict(self, save_optimizer: bool = True, save_param_scheduler: bool = True,
                   meta: dict | None = None, include_weights: bool = True) -> dict:
        """Everything a restart needs, as the checkpoint dict (layout in docs/checkpoints.md): ``meta`` (epoch /
        iter to resume from, seed, versions, config text, dataset meta, experiment name, time, plus ``meta``),
        ``state_dict`` (CPU copies of the unwrapped model's tensors; FSDP: gathered, a collective),
        ``optimizer`` / ``param_schedulers`` (when asked for and built), ``message_hub``, ``hooks`` (non-empty
        hook states) and ``rng_state`` (Python, NumPy, torch generators). Only tensors and plain containers.
        ``include_weights=False`` leaves out ``state_dict`` (a sharded checkpoint writes the weights itself).
        """
        import kiln
        loop = self._train_loop
        epoch, iteration = loop.progress() if loop is not None else (0, 0)
        full_meta = dict(to_weights_only(meta or {}))
        full_meta.update(epoch=epoch, iter=iteration, seed=self._seed, kiln_version=kiln.__version__,
                         torch_version=str(torch.__version__), cfg=self.cfg.pretty_text if len(self.cfg) else '',
                         dataset_meta=dataset_meta((self._train_loop, self._val_loop, self._test_loop)),
                         experiment_name=self._experiment_name,
                         time=time.strftime('%Y%m%d_%H%M%S', time.localtime()))
        state: dict[str, Any] = dict(meta=full_meta)
        if include_weights:
            state['state_dict'] = weights_to_cpu(get_state_dict(self.model))
        if save_optimizer and self._optim_wrapper is not None:
            state['optimizer'] = self._optim_wrapper.state_dict()
        if save_param_scheduler and self._param_schedulers:
            state['param_schedulers'] = scheduler_states(self._param_schedulers)
        state['message_hub'] = self.message_hub.state_dict()
        state['hooks'] = hook_states(self._hooks)
        state['rng_state'] = get_rng_state()
        return state

    def load_state_dict(self, state: dict, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
                        source: str | None = None) -> None:
        """Put back what ``state_dict()`` returned: weights (strict), loop position, message hub, optimizer,
        schedulers, hook states and RNG states. Call it once the optimizer wrapper and schedulers are built
        (``train()`` does, through ``resume()``). ``source`` names the file in error messages.

        Raises:
            KeyError: ``state`` is not a training checkpoint (no ``meta`` / ``state_dict``), or its scheduler list
                does not match the configured schedulers.
            CheckpointError: the weights do not match the model.
        """
        check_training_checkpoint(state, source)
        apply_weights(self.model, state, strict=True, logger=self.logger, source=source)
        if resume_optimizer and 'optimizer' in state and self._optim_wrapper is not None:
            self._optim_wrapper.load_state_dict(state['optimizer'])
        self._load_run_state(state, resume_param_scheduler)

    def _load_run_state(self, state: dict, resume_param_scheduler: bool = True) -> None:
        """Everything of ``load_state_dict`` but the weights and the optimizer: loop position, message hub,
        schedulers, hook states, RNG states."""
        meta = state['meta']
        self.train_loop.load_progress(meta.get('epoch', 0), meta.get('iter', 0))
        if 'message_hub' in state:
            self.message_hub.load_state_dict(state['message_hub'])
        if resume_param_scheduler and 'param_schedulers' in state and self._param_schedulers:
            load_scheduler_states(self._param_schedulers, state['param_schedulers'])
        load_hook_states(self._hooks, state.get('hooks', {}))
        if 'rng_state' in state:
            set_rng_state(state['rng_state'])
        self._weights_loaded()

    def _weights_loaded(self) -> None:
        self._source.loaded = True
        self._source.ready_model = unwrap_model(self.model)  # loaded weights must not be re-initialised later

    def save_checkpoint(self, out_dir: str, filename: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: dict | None = None, sharded: bool = False) -> None:
        """Write ``out_dir/filename`` (rank 0 only) after the ``before_save_checkpoint`` hooks; the content is
        ``state_dict()``. ``meta`` adds keys to the checkpoint's meta.

        ``sharded=True`` writes a ``torch.distributed.checkpoint`` directory instead (``filename`` conventionally
        ends in ``.dcp``): every rank writes its own shards of the weights and optimizer state, nothing is
        gathered (a collective: call it on every rank); the rest of ``state_dict()`` goes beside them
        (``kiln.checkpoint.sharded``). ``resume()`` reads it back with any number of ranks.
        """
        if sharded:
            from kiln.checkpoint.sharded import save_sharded_checkpoint
            extra = self.state_dict(False, save_param_scheduler, meta, include_weights=False)
            extra['meta']['sharded'] = True
            if is_main_process():
                self.call_hook('before_save_checkpoint', checkpoint=extra)
            save_sharded_checkpoint(osp.join(out_dir, filename), self.model,
                                    self._optim_wrapper if save_optimizer else None, extra)
            return
        if not is_main_process() and not needs_all_ranks_to_save(self.model):
            return
        checkpoint = self.state_dict(save_optimizer, save_param_scheduler, meta)  # FSDP: gathers shards
        if not is_main_process():
            return
        self.call_hook('before_save_checkpoint', checkpoint=checkpoint)
        _save_checkpoint(checkpoint, osp.join(out_dir, filename))

    def load_checkpoint(self, filename: str, map_location: Any = 'cpu', strict: bool = False,
                        revise_keys: list[tuple[str, str]] = [(r'^module\.', '')]) -> dict:
        """Load the weights of a checkpoint into the model (after the ``after_load_checkpoint`` hooks, which may
        edit it); returns the checkpoint dict.

        Raises:
            FileNotFoundError / CheckpointError: unreadable file. RuntimeError: ``strict`` and keys differ.
        """
        checkpoint = read_checkpoint(filename, map_location)
        if not isinstance(checkpoint, dict):
            raise TypeError(f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, expected a dict')
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        apply_weights(self.model, checkpoint, strict, revise_keys, self.logger, source=str(filename))
        self._weights_loaded()
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self, filename: str, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               map_location: Any = 'cpu') -> None:
        """Continue a training run from ``filename``: read it, run the ``after_load_checkpoint`` hooks, adopt its
        seed, then ``load_state_dict`` (weights, optimizer, schedulers, message hub, hook states, RNG states and
        the loop position: the next epoch / iteration). Call it after the optimizer wrapper and schedulers are
        built (``train()`` does).

        Raises:
            KeyError: the file is not a training checkpoint (no ``meta``).
        """
        from kiln.checkpoint.sharded import is_sharded_checkpoint, load_sharded_checkpoint
        if is_sharded_checkpoint(filename):  # weights + optimizer resharded onto this run's ranks
            checkpoint = load_sharded_checkpoint(filename, self.model,
                                                 self._optim_wrapper if resume_optimizer else None)
            self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
            seed = checkpoint.get('meta', {}).get('seed')
            if seed is not None and seed != self._seed:
                self._reseed(seed)
            self._load_run_state(checkpoint, resume_param_scheduler)
            self.logger.info(f'resumed from sharded checkpoint {filename} at epoch {self.epoch}, iter {self.iter}')
            return
        checkpoint = read_checkpoint(filename, map_location)
        check_training_checkpoint(checkpoint, str(filename))
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        seed = checkpoint.get('meta', {}).get('seed')
        if seed is not None and seed != self._seed:
            self.logger.warning(f'the checkpoint was trained with seed {seed}, this run has {self._seed}: '
                                f'using {seed}')
            self._reseed(seed)
        self.load_state_dict(checkpoint, resume_optimizer, resume_param_scheduler, source=str(filename))
        self.logger.info(f'resumed from {filename} at epoch {self.epoch}, iter {self.iter}')

    def _reseed(self, seed: int) -> None:
        old, self._randomness_cfg['seed'] = self._seed, seed
        self._seed = set_random_seed(**self._randomness_cfg)
        sampler = get_sampler(self._train_loop.dataloader) if self._train_loop is not None else None
        if getattr(sampler, 'seed', None) == old:
            sampler.seed = seed

    # ---------------------------------------------------------------------- reuse across experiments
    def reset_model(self) -> nn.Module:
        """Give the runner a freshly initialised model, optimizer wrapper and schedulers; reset the loop counters.

        A model config is built again (``init_cfg`` applied by ``init_weights()``); a model passed as an object is
        re-initialised in place (``reset_parameters()`` of every sub-module that has one, then ``init_weights()``).
        ``load_from`` weights are loaded again (as at the first ``train()``); ``resume`` is not applied again. An
        optimizer wrapper / schedulers given as configs are rebuilt; an optimizer wrapper given as an object gets
        a new optimizer of the same class and defaults over the new parameters. Hook states are kept.

        Returns:
            The new (wrapped) model.
        """
        if isinstance(self._model_src, nn.Module):
            S.reinit_module(self._model_src)
        self._model = None
        self._source = _WeightsSource(self._source.load_from, resume=False)
        model = self.model  # builds (config) or moves + wraps (object)
        self._init_model_weights()
        if self._source.load_from:
            self.load_checkpoint(self._source.load_from)
        if self._train_loop is not None:
            self._train_loop.reset()
        wrapper_src = self._optim_wrapper_src
        if wrapper_src is not None:
            self._optim_wrapper = (self.build_optim_wrapper(wrapper_src) if isinstance(wrapper_src, dict)
                                   else S.rebind_optimizer(wrapper_src, model))
            if self._param_scheduler_src is not None and self._train_loop is not None:
                self._param_schedulers = self.build_param_scheduler(self._param_scheduler_src)
        return model

    def set_dataloader(self, split: str, data: Any) -> None:
        """Use ``data`` for the ``'train'`` / ``'val'`` / ``'test'`` dataloader from now on: a DataLoader, a
        dataloader config, or a dataset / dataset config that replaces the ``dataset`` of the current dataloader
        config (see ``kiln.runner.session.dataloader_source``). The loop of that split is rebuilt on next use,
        with the runner's seed.

        Raises:
            ValueError: unknown ``split``. TypeError: ``data`` of another kind.
        """
        if split not in S.SPLITS:
            raise ValueError(f"set_dataloader: split must be one of {S.SPLITS}, got {split!r}")
        old = dict(train=self._train_dataloader_src, val=self._val_dataloader_src,
                   test=self._test_dataloader_src)[split]
        new = S.dataloader_source(old, split, data)
        if split == 'train':
            self._train_dataloader_src, self._train_loop = new, None
        elif split == 'val':
            self._val_dataloader_src, self._val_loop = new, None
        else:
            self._test_dataloader_src, self._test_loop = new, None

    def new_session(self, name: str | None = None, log_dir: str | os.PathLike | None = None) -> None:
        """Close the current logging / visualization session and open a fresh one.

        The text log file and the visualizer backends are closed; a new timestamp is taken; the new log goes to
        ``log_dir`` (default ``work_dir/<new timestamp>``) as ``<timestamp>.log``, the backends write to
        ``<log_dir>/vis_data`` (new backend runs, given the config); the message hub starts empty;
        ``experiment_name`` becomes ``name`` (default the new timestamp). Model, data and hooks are untouched.
        """
        meta = self.visualizer.dataset_meta
        self.visualizer.close()
        close_logger(self._logger)
        self._timestamp = stamp = S.session_stamp(make_timestamp(), self._timestamp, self._work_dir,
                                                  log_dir is not None)
        self._log_dir = osp.abspath(os.fspath(log_dir)) if log_dir is not None else osp.join(self._work_dir, stamp)
        self._experiment_name = name or stamp
        self._logger = get_logger('kiln', log_file=osp.join(self._log_dir, f'{stamp}.log'),
                                  log_level=self._log_level)
        self._logger.addFilter(self._log_memo)
        self._log_memo.warnings.clear()  # a warning met again in this session goes into its log file
        self.message_hub = MessageHub(name=self._experiment_name)
        self.visualizer = self.build_visualizer(S.visualizer_source(self._visualizer_cfg))
        self.visualizer.dataset_meta = meta
        if len(self.cfg) and is_main_process():
            self.visualizer.add_config(self.cfg)  # each backend run carries the config, as at start-up
        for loop in (self._val_loop, self._test_loop):  # evaluators log through the runner's logger
            if getattr(loop, 'evaluator', None) is not None:
                loop.evaluator.logger = self._logger
        self.logger.info(f'new session {self._experiment_name}: log dir {self._log_dir}')

    # ------------------------------------------------------------------- builders (MMEngine API, overridable)
    @staticmethod
    def build_dataloader(dataloader: Any, seed: int | None = None, diff_rank_seed: bool = False,
                         name: str = 'dataloader') -> Any:
        """See ``kiln.dataset.build_dataloader`` (the loops call this through the runner)."""
        return build_dataloader(dataloader, seed, diff_rank_seed, name)

    def build_model(self, model: Any) -> nn.Module:
        """Build a model from a config (``data_preprocessor`` default applied) or return the module."""
        return B.build_model(model, self._data_preprocessor)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (CUDA if available, else CPU) and wrap it for distributed training."""
        device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
        return B.wrap_model(model.to(device), self._distributed, model_wrapper_cfg,
                            self.cfg.get('find_unused_parameters', False), self.cfg.get('sync_bn'))

    def build_train_loop(self, loop: Any) -> Any:
        """Build the train loop from ``train_cfg`` (or return a built loop) over the train dataloader source; see
        ``kiln.runner.builders.build_train_loop``."""
        return B.build_train_loop(loop, self, self._train_dataloader_src)

    def build_val_loop(self, loop: Any) -> Any:
        """Build the val loop from ``val_cfg`` with the val dataloader and evaluator (``ValLoop`` by default)."""
        return B.build_eval_loop(loop, self, self._val_dataloader_src, self._val_evaluator, 'ValLoop')

    def build_test_loop(self, loop: Any) -> Any:
        """Build the test loop from ``test_cfg`` with the test dataloader and evaluator (``TestLoop`` by default)."""
        return B.build_eval_loop(loop, self, self._test_dataloader_src, self._test_evaluator, 'TestLoop')

    def build_visualizer(self, visualizer: Any = None) -> Any:
        """Build this run's Visualizer (default ``Visualizer`` + ``LocalVisBackend``) named after the experiment,
        writing to ``log_dir/vis_data``; a built one is returned unchanged."""
        return B.build_visualizer(visualizer, self._experiment_name, osp.join(self._log_dir, 'vis_data'))

    def build_log_processor(self, log_processor: Any) -> Any:
        """Build the LogProcessor (its ``by_epoch`` follows ``train_cfg`` unless the config sets it)."""
        return B.build_log_processor(log_processor, by_epoch=_loop_by_epoch(self._train_cfg))

    def build_evaluator(self, evaluator: Any) -> Any:
        """See ``kiln.runner.builders.build_evaluator``."""
        return B.build_evaluator(evaluator)

    def build_optim_wrapper(self, optim_wrapper: Any) -> Any:
        """Build an optimizer wrapper for ``self.model`` from a config (a built one is returned unchanged).
        ``train()`` and ``reset_model()`` call it: override it to build the optimizer your way."""
        return B.build_optim_wrapper(self.model, optim_wrapper)

    def build_param_scheduler(self, scheduler: Any) -> Any:
        """Build the parameter schedulers for ``self.optim_wrapper`` (which must be built) from a config, a list
        of configs / schedulers, or a dict of lists per optimizer; epoch-based ones with
        ``convert_to_iter_based`` use ``len(train_dataloader)``. The one place schedulers are built (``train()``
        and ``reset_model()`` call it): override it to build them your way."""
        loop = self.train_loop
        return B.build_param_schedulers(scheduler, self._optim_wrapper, _len(loop.dataloader), loop.max_epochs,
                                        loop.max_iters)

    def close(self) -> None:
        """Close the log file and the visualizer backends (the Runner is unusable afterwards)."""
        self.visualizer.close()
        close_logger(self._logger)


def _require(loop: Any, what: str) -> Any:
    if loop is None:
        raise RuntimeError(f'this needs {what}; the runner was built without it')
    return loop


def _len(dataloader: Any) -> int | None:
    try:
        return len(dataloader)
    except TypeError:
        return None


def _loop_by_epoch(train_cfg: Any) -> bool | None:
    if not isinstance(train_cfg, dict):
        return None
    if 'by_epoch' in train_cfg:
        return bool(train_cfg['by_epoch'])
    loop_type = train_cfg.get('type')
    if isinstance(loop_type, str):
        return 'Iter' not in loop_type
    if 'max_iters' in train_cfg and 'max_epochs' not in train_cfg:
        return False
    return None
