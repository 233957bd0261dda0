"""``OptimWrapper``: one interface for backward, gradient accumulation, clipping and stepping."""
from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from kiln.registry import OPTIM_WRAPPERS


# Entered around every forward pass that needs no gradient-sync change: one shared, stateless, reusable context
# (a ``@contextmanager`` generator per iteration costs a few microseconds).
_NULL_CONTEXT = nullcontext()


_PLAIN_STEPS: dict[type, bool] = {}


def _plain_steps(cls: type) -> bool:
    """True when ``cls`` keeps OptimWrapper's scale_loss / backward / should_update / step / zero_grad (then
    ``update_params`` may run their bodies inline); looked up once per class."""
    plain = _PLAIN_STEPS.get(cls)
    if plain is None:
        plain = _PLAIN_STEPS[cls] = all(getattr(cls, name) is getattr(OptimWrapper, name) for name in
                                        ('scale_loss', 'backward', 'should_update', 'step', 'zero_grad'))
    return plain


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@OPTIM_WRAPPERS.register_module()
class OptimWrapper:
    """Wraps a ``torch.optim.Optimizer`` with gradient accumulation and clipping.

    ``update_params(loss)`` = ``scale_loss`` -> ``backward`` -> (every ``accumulative_counts`` calls)
    ``step`` (clipping first) -> ``zero_grad``. With accumulation the loss is divided by the window length,
    so ``k`` accumulated batches of size ``b`` give the gradient of one batch of size ``k * b`` (for losses that
    are means over the batch). Call ``initialize_count_status(model, done_iters, max_iters)`` before training
    (the train loop does) so that the last, shorter window divides by its real length.

    Args:
        optimizer: the torch optimizer.
        accumulative_counts: number of ``update_params`` calls per optimizer step (>= 1).
        clip_grad: ``dict(max_norm=.., norm_type=2, ...)`` -> ``torch.nn.utils.clip_grad_norm_`` (the total
            norm before clipping is kept, as a tensor, in ``last_grad_norm``), or ``dict(type='value',
            clip_value=..)`` -> ``torch.nn.utils.clip_grad_value_``.

    Raises:
        TypeError: ``optimizer`` is not a torch optimizer / ``clip_grad`` not a dict.
        ValueError: ``accumulative_counts`` < 1, unknown clip type.
    """

    def __init__(self, optimizer: Optimizer, accumulative_counts: int = 1,
                 clip_grad: dict | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f'OptimWrapper: optimizer must be a torch.optim.Optimizer, got '
                            f'{type(optimizer).__name__} (build it from a cfg with build_optim_wrapper)')
        if int(accumulative_counts) < 1:
            raise ValueError(f'OptimWrapper: accumulative_counts must be >= 1, got {accumulative_counts}')
        self.optimizer = optimizer
        self._accumulative_counts = int(accumulative_counts)
        self.clip_grad_kwargs: dict = {}
        self.clip_func = None
        self.grad_name = 'grad_norm'
        if clip_grad is not None:
            if not isinstance(clip_grad, dict):
                raise TypeError(f'OptimWrapper: clip_grad must be a dict, got {type(clip_grad).__name__}')
            clip_grad = dict(clip_grad)
            clip_type = clip_grad.pop('type', 'norm')
            if clip_type == 'norm':
                if 'max_norm' not in clip_grad:
                    raise ValueError("OptimWrapper: clip_grad of type 'norm' needs 'max_norm'")
                self.clip_func = torch.nn.utils.clip_grad_norm_
                self.grad_name = 'grad_norm'
            elif clip_type == 'value':
                if 'clip_value' not in clip_grad:
                    raise ValueError("OptimWrapper: clip_grad of type 'value' needs 'clip_value'")
                self.clip_func = torch.nn.utils.clip_grad_value_
                self.grad_name = 'grad_value'
            else:
                raise ValueError(f"OptimWrapper: clip_grad type must be 'norm' or 'value', got {clip_type!r}")
            self.clip_grad_kwargs = clip_grad
        self.last_grad_norm: torch.Tensor | None = None
        self._inner_count = 0
        self._max_counts = -1
        self._remainder_counts = -1

    # ------------------------------------------------------------------ main entry
    def update_params(self, loss: torch.Tensor, step_kwargs: dict | None = None,
                      zero_kwargs: dict | None = None) -> None:
        """Backward ``loss`` (scaled for accumulation) and step / zero the gradients when a window is full."""
        if (self._accumulative_counts == 1 and self.clip_func is None and not step_kwargs and not zero_kwargs
                and (_PLAIN_STEPS.get(type(self)) or _plain_steps(type(self)))):  # the common case, without five method calls per iteration
            loss.backward()
            self._inner_count += 1
            optimizer = self.optimizer
            optimizer.step()
            optimizer.zero_grad()
            return
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            if step_kwargs:
                self.step(**step_kwargs)
            else:
                self.step()
            if zero_kwargs:
                self.zero_grad(**zero_kwargs)
            else:
                self.zero_grad()

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide ``loss`` by the length of the current accumulation window."""
        if self._accumulative_counts == 1:
            return loss
        if self._max_counts == -1:
            return loss / self._accumulative_counts
        if self._inner_count < self._max_counts - self._remainder_counts:
            return loss / self._accumulative_counts
        return loss / self._remainder_counts

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``loss.backward(**kwargs)`` and count the call."""
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Clip gradients (if configured) and call ``optimizer.step``."""
        if self.clip_func is not None:
            self._clip_grad()
        self.optimizer.step(**kwargs)

    def zero_grad(self, **kwargs: Any) -> None:
        self.optimizer.zero_grad(**kwargs)

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g['params']
                if p.requires_grad and p.grad is not None]

    def _clip_grad(self) -> None:
        params = self._params_with_grad()
        if params:
            norm = self.clip_func(params, **self.clip_grad_kwargs)
            self.last_grad_norm = norm.detach() if isinstance(norm, torch.Tensor) else None

    # ------------------------------------------------------------------ accumulation
    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Tell the wrapper how many iterations are done and how many there are in total.

        Warns when resuming in the middle of an accumulation window, or when the model has BatchNorm layers
        and ``accumulative_counts > 1`` (BN statistics see only the small batches).
        """
        self._inner_count = int(init_counts)
        self._max_counts = int(max_counts)
        if self._inner_count % self._accumulative_counts != 0:
            warnings.warn(f'Resumed iteration {self._inner_count} is not a multiple of accumulative_counts='
                          f'{self._accumulative_counts}; the first window after resuming is shorter',
                          stacklevel=2)
        if self._accumulative_counts > 1 and _has_batch_norm(model):
            warnings.warn('Gradient accumulation with BatchNorm layers: BN statistics are computed per small '
                          'batch, so results differ from a real large batch', stacklevel=2)
        self._remainder_counts = self._max_counts % self._accumulative_counts

    def should_update(self) -> bool:
        """True after the last ``backward`` of an accumulation window (or of training)."""
        n = self._inner_count
        return self._accumulative_counts == 1 or n % self._accumulative_counts == 0 or n == self._max_counts

    def should_sync(self) -> bool:
        """True when the next ``backward`` ends a window (DDP must then all-reduce gradients)."""
        return ((self._inner_count + 1) % self._accumulative_counts == 0
                or (self._inner_count + 1) == self._max_counts)

    def optim_context(self, model: nn.Module) -> AbstractContextManager:
        """Context for the forward pass: ``model.no_sync()`` (skip DDP's gradient all-reduce) inside an
        accumulation window, else a shared do-nothing context."""
        if self._accumulative_counts == 1 or self.should_sync() or not hasattr(model, 'no_sync'):
            return _NULL_CONTEXT
        return model.no_sync()

    # ------------------------------------------------------------------ introspection / state
    @property
    def inner_count(self) -> int:
        return self._inner_count

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """``{'lr': [lr of each param group]}``."""
        return {'lr': [g['lr'] for g in self.param_groups]}

    def get_momentum(self) -> dict[str, list[float]]:
        """``{'momentum': [...]}``: ``momentum`` of SGD-like groups, ``betas[0]`` of Adam-like ones, else 0."""
        out = []
        for g in self.param_groups:
            if 'momentum' in g:
                out.append(g['momentum'])
            elif 'betas' in g:
                out.append(g['betas'][0])
            else:
                out.append(0)
        return {'momentum': out}

    def state_dict(self) -> dict:
        """The optimizer's state dict (tensors and plain containers)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(accumulative_counts={self._accumulative_counts}, '
                f'clip_grad={self.clip_grad_kwargs or None})\n{self.optimizer!r}')
