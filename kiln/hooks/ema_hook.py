"""EMAHook: keep an exponential moving average of the model's weights; validate and save with it."""
from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['EMAHook']


@HOOKS.register_module()
class EMAHook(Hook):
    """Average the model's weights during training and use the average for validation, testing and checkpoints
    (MMEngine's ``EMAHook``, same arguments and checkpoint layout).

    - ``before_run``: builds ``ema_model = MODELS.build(dict(type=ema_type, model=<unwrapped model>,
      **kwargs))`` (e.g. ``ExponentialMovingAverage(momentum=0.0002, interval=1, update_buffers=False)`` or
      ``MomentumAnnealingEMA(gamma=...)``; see ``kiln.model.averaged_model``).
    - ``after_train_iter``: ``ema_model.update_parameters(model)`` once training has reached ``begin_iter``
      (0-based count of finished iterations) and ``begin_epoch``; before that the EMA parameters simply follow
      the model's.
    - ``before_val_epoch`` / ``before_test_epoch``: swap the EMA weights into the model (parameters, and the
      buffers when ``update_buffers``); ``after_val_epoch`` / ``after_test_epoch`` swap them back, so the
      evaluation (and a validation loss) sees the averaged model while training continues from the raw one.
    - ``before_save_checkpoint``: ``checkpoint['ema_state_dict'] = ema_model.state_dict()``, then the
      ``module.*`` entries of it are exchanged with ``checkpoint['state_dict']``: the checkpoint's
      ``state_dict`` holds the *averaged* weights (what ``load_from`` / deployment should use) and
      ``ema_state_dict`` the raw training weights plus ``steps`` / ``n_averaged``.
    - ``after_load_checkpoint``: when resuming (``runner`` built with ``resume``) and the checkpoint has
      ``ema_state_dict``, the exchange is undone so the model gets its raw weights and the EMA model its average
      and step count; otherwise (``load_from``) the EMA model is initialised from ``checkpoint['state_dict']``.

    Args:
        ema_type: a type registered in ``MODELS`` (default ``'ExponentialMovingAverage'``) or a class.
        strict_load: load EMA weights strictly.
        begin_iter: start averaging once this many iterations are done (>= 0).
        begin_epoch: start averaging once this many epochs are done (>= 0).
        **kwargs: arguments of the averaged model (``momentum``, ``interval``, ``update_buffers``, ``gamma``...).

    Raises:
        ValueError: negative ``begin_iter`` / ``begin_epoch``, or ``begin_epoch`` beyond ``max_epochs``.
    """

    priority = 'NORMAL'

    def __init__(self, ema_type: str | type = 'ExponentialMovingAverage', strict_load: bool = False,
                 begin_iter: int = 0, begin_epoch: int = 0, **kwargs: Any) -> None:
        if begin_iter < 0 or begin_epoch < 0:
            raise ValueError(f'EMAHook: begin_iter and begin_epoch must be >= 0, got {begin_iter}, {begin_epoch}')
        self.ema_cfg = dict(type=ema_type, **kwargs)
        self.strict_load = strict_load
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.ema_model: Any = None
        self.src_model: Any = None

    # ---------------------------------------------------------------------------------------- helpers
    def _ema_started(self, runner: Runner) -> bool:
        return runner.iter + 1 >= self.begin_iter and runner.epoch + 1 >= self.begin_epoch

    def _pairs(self) -> Any:
        if self.ema_model.update_buffers:
            return zip(itertools.chain(self.ema_model.module.parameters(), self.ema_model.module.buffers()),
                       itertools.chain(self.src_model.parameters(), self.src_model.buffers()))
        return zip(self.ema_model.module.parameters(), self.src_model.parameters())

    def _swap_ema_parameters(self) -> None:
        """Exchange the tensors' data between the EMA model and the source model (in place)."""
        if self.ema_model is None:
            return
        for p_avg, p_src in self._pairs():
            tmp = p_avg.data.clone()
            p_avg.data.copy_(p_src.data)
            p_src.data.copy_(tmp)

    @staticmethod
    def _swap_ema_state_dict(checkpoint: dict) -> None:
        """Exchange ``ema_state_dict['module.<k>']`` with ``state_dict['<k>']`` for every key both hold."""
        model_state, ema_state = checkpoint['state_dict'], checkpoint['ema_state_dict']
        for key in ema_state:
            if key.startswith('module.') and key[7:] in model_state:
                ema_state[key], model_state[key[7:]] = model_state[key[7:]], ema_state[key]

    # ----------------------------------------------------------------------------------- mount points
    def before_run(self, runner: Runner) -> None:
        from kiln.registry import MODELS
        from kiln.model.wrappers import unwrap_model
        self.src_model = unwrap_model(runner.model)
        self.ema_model = MODELS.build(dict(self.ema_cfg, model=self.src_model))

    def before_train(self, runner: Runner) -> None:
        max_epochs = runner.max_epochs
        if self.begin_epoch and max_epochs is not None and self.begin_epoch > max_epochs:
            raise ValueError(f'EMAHook: begin_epoch={self.begin_epoch} is beyond max_epochs={max_epochs}')

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self._ema_started(runner):
            self.ema_model.update_parameters(self.src_model)
        else:
            ema_state = self.ema_model.module.state_dict()
            for key, value in self.src_model.state_dict().items():
                ema_state[key].data.copy_(value.data)

    def before_val_epoch(self, runner: Runner) -> None:
        self._swap_ema_parameters()

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._swap_ema_parameters()

    def before_test_epoch(self, runner: Runner) -> None:
        self._swap_ema_parameters()

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._swap_ema_parameters()

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        from kiln.checkpoint import weights_to_cpu
        checkpoint['ema_state_dict'] = weights_to_cpu(self.ema_model.state_dict())
        self._swap_ema_state_dict(checkpoint)

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        from kiln.checkpoint import load_state_dict
        resuming = bool(getattr(runner, '_resume', False))
        if 'ema_state_dict' in checkpoint and resuming:
            self._swap_ema_state_dict(checkpoint)
            load_state_dict(self.ema_model, checkpoint['ema_state_dict'], strict=self.strict_load,
                            logger=runner.logger)
        else:
            if resuming:
                runner.logger.warning('EMAHook: the checkpoint has no ema_state_dict; the EMA model restarts '
                                      'from its state_dict')
            state = checkpoint.get('state_dict', checkpoint)
            state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
            load_state_dict(self.ema_model.module, copy.deepcopy(state), strict=self.strict_load,
                            logger=runner.logger)
