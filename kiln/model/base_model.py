"""``BaseModel``: the model interface the Runner drives (train_step / val_step / test_step)."""
from __future__ import annotations

from abc import abstractmethod
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed
from torch import nn

from kiln.registry import MODELS

from .base_module import BaseModule


class BaseModel(BaseModule):
    """Base class of trainable models.

    The Runner calls ``train_step`` / ``val_step`` / ``test_step`` with a collated batch
    (``dict(inputs=..., data_samples=...)``). Subclasses implement ``forward(inputs, data_samples=None,
    mode='tensor')`` where ``mode`` is

    * ``'loss'``: return a dict of losses (``Tensor`` or list of ``Tensor``; keys containing ``'loss'`` are
      summed into the total loss, other keys, e.g. accuracies, are only logged);
    * ``'predict'``: return a list of data samples with predictions;
    * ``'tensor'``: return raw network outputs.

    Args:
        data_preprocessor: an ``nn.Module`` or a cfg dict built from ``MODELS``
            (default ``dict(type='BaseDataPreprocessor')``). It moves batches to the model's device.
        init_cfg: see ``BaseModule``.

    Raises:
        TypeError: ``data_preprocessor`` is neither a module nor a dict.
    """

    def __init__(self, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg)
        if data_preprocessor is None:
            data_preprocessor = dict(type='BaseDataPreprocessor')
        if isinstance(data_preprocessor, nn.Module):
            self.data_preprocessor = data_preprocessor
        elif isinstance(data_preprocessor, dict):
            self.data_preprocessor = MODELS.build(data_preprocessor)
        else:
            raise TypeError(f'data_preprocessor must be an nn.Module or a config dict, '
                            f'got {type(data_preprocessor).__name__}')

    @abstractmethod
    def forward(self, inputs: Any, data_samples: list | None = None, mode: str = 'tensor') -> Any:
        """Run the network; see the class docstring for ``mode``."""

    # ------------------------------------------------------------------ steps
    def train_step(self, data: dict | tuple | list, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """One optimisation step: preprocess -> forward(mode='loss') -> parse_losses -> update_params.

        ``optim_wrapper.optim_context(self)`` wraps the forward pass (autocast for AMP, ``no_sync`` while
        accumulating gradients under DDP). Returns ``log_vars``: detached 0-dim tensors, one per loss term
        plus ``'loss'`` (no device sync here).
        """
        context = optim_wrapper.optim_context(self)
        # ``self.data_preprocessor`` is a submodule: reading it from ``_modules`` skips ``nn.Module.__getattr__``,
        # which Python reaches only after raising and clearing an AttributeError (a few microseconds per step).
        preprocessor = self._modules.get('data_preprocessor') or self.data_preprocessor
        if type(context) is nullcontext:  # nothing to enter (no AMP, no no_sync): skip the with-statement calls
            data = preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        else:
            with context:
                data = preprocessor(data, True)
                losses = self._run_forward(data, mode='loss')
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: dict | tuple | list) -> list:
        """Preprocess (``training=False``) and ``forward(mode='predict')``; returns a list of data samples."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode='predict')

    def test_step(self, data: dict | tuple | list) -> list:
        """Same as ``val_step``."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode='predict')

    def _run_forward(self, data: dict | tuple | list, mode: str) -> Any:
        if isinstance(data, dict):
            return self(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self(*data, mode=mode)
        raise TypeError(f'{type(self).__name__}: the data preprocessor must return a dict, list or tuple, '
                        f'got {type(data).__name__}')

    # ------------------------------------------------------------------ losses
    def parse_losses(self, losses: dict[str, torch.Tensor | list[torch.Tensor]]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum the loss terms and build the values to log.

        Each value is reduced with ``.mean()`` (a list of tensors: sum of their means). The total ``loss`` is
        the sum of the terms whose key contains ``'loss'``. ``log_vars`` maps ``'loss'`` and every key to a
        detached 0-dim tensor on the model's device (averaged across ranks when distributed). Nothing is
        synchronised to the host.

        Raises:
            TypeError: a value is neither a tensor nor a list of tensors (names the key).
            ValueError: no key contains ``'loss'``.
        """
        # One pass: each term is detached for logging as it is read. Terms first, total last: the order of
        # MMEngine's log lines (`loss_cls: ..  loss_bbox: ..  loss: ..`).
        log_vars: dict[str, torch.Tensor] = {}
        loss = None  # summed in key order, as ``sum(terms)`` would
        total = None  # the detached total while it is a single term (one detach for both)
        for name, value in losses.items():
            if isinstance(value, torch.Tensor):  # a 0-dim loss is its own mean: no extra autograd node
                term = value if value.ndim == 0 else value.mean()
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
                term = sum(v.mean() for v in value)
            else:
                raise TypeError(f'losses[{name!r}] must be a Tensor or a non-empty list of Tensors, '
                                f'got {type(value).__name__}')
            log_vars[name] = detached = term.detach()
            if 'loss' in name:
                if loss is None:
                    loss, total = term, detached
                else:
                    loss, total = loss + term, None
        if loss is None:
            raise ValueError(f'{type(self).__name__}.forward(mode="loss") returned no key containing "loss": '
                             f'{list(log_vars)}')
        log_vars['loss'] = loss.detach() if total is None else total
        if _DIST_AVAILABLE and _dist.is_initialized():
            return loss, _reduce_mean(log_vars)
        return loss, log_vars


_dist = torch.distributed
_DIST_AVAILABLE = _dist.is_available()


def _reduce_mean(log_vars: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average the values over ranks with one all_reduce (identity when not distributed)."""
    if not (_DIST_AVAILABLE and _dist.is_initialized()) or _dist.get_world_size() == 1:
        return log_vars
    keys = list(log_vars)
    stacked = torch.stack([log_vars[k].float() for k in keys])
    _dist.all_reduce(stacked)
    stacked = stacked / _dist.get_world_size()
    return {k: stacked[i] for i, k in enumerate(keys)}
