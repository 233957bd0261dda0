"""Validation loss: run the model in loss mode on validation batches, without gradients or training-mode layers.

Used by ``ValLoop`` / ``TestLoop`` with ``compute_loss=True``.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator

import torch
from torch import nn

from kiln.model.wrappers.utils import unwrap_model

__all__ = ['loss_mode', 'compute_batch_loss', 'LossAverager']

_EVAL_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                nn.modules.dropout._DropoutNd)
_STOCHASTIC_OR_NORM = re.compile(r'Drop(out|Path|Block)|BatchNorm|InstanceNorm|SyncBN|LayerNorm|GroupNorm')


def _keeps_eval(module: nn.Module) -> bool:
    """Layers whose train mode changes the computation (normalisation statistics, dropout, drop path) and any
    layer of torch / torchvision itself stay in eval mode."""
    cls = type(module)
    if isinstance(module, _EVAL_LAYERS):
        return True
    if _STOCHASTIC_OR_NORM.search(cls.__name__):  # DropPath, DropBlock, FrozenBatchNorm2d, custom norms
        return True
    return cls.__module__.split('.')[0] in ('torch', 'torchvision')


@contextlib.contextmanager
def loss_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in "loss evaluation" mode for the duration of the block, then restore every module's mode.

    The model's own modules (detectors, heads, necks: classes not from torch / torchvision) get
    ``training=True`` so that the code paths that build the loss run exactly as in training (e.g. FCOS keeps
    its stride-normalised box regression in training mode and rescales it in eval mode), while layers whose
    train mode changes the numbers (BatchNorm / InstanceNorm: running statistics; Dropout / DropPath:
    identity) and all torch / torchvision layers stay in eval mode. ``Module.train()`` is not called, so
    overrides such as ``norm_eval`` are not involved. Gradients are disabled.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in modes:
            m.training = not _keeps_eval(m)
        with torch.no_grad():
            yield model
    finally:
        for m, was in modes:
            m.training = was


def _batch_size(data: Any) -> int:
    inputs = data.get('inputs') if isinstance(data, dict) else (data[0] if isinstance(data, (list, tuple))
                                                                  else None)
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    return 1


def compute_batch_loss(model: nn.Module, data_batch: Any) -> tuple[dict[str, torch.Tensor], int]:
    """Loss terms of one validation batch: ``data_preprocessor(data_batch, training=False)`` (targets are kept;
    no batch augmentation), ``forward(mode='loss')`` inside ``loss_mode`` and ``parse_losses``.

    Returns:
        ``(log_vars, batch_size)``: detached 0-dim tensors (``'loss'`` and every term), and the number of
        samples in the batch (``inputs.shape[0]``, or ``len(inputs)`` for a list).

    Raises:
        RuntimeError: the model has no loss path for this data (the message names what failed), e.g. the
            validation pipeline does not load annotations.
    """
    module = unwrap_model(model)
    with loss_mode(module):
        data = module.data_preprocessor(data_batch, False)
        try:
            losses = module._run_forward(data, mode='loss') if hasattr(module, '_run_forward') else module(
                **data, mode='loss')
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise RuntimeError(f'compute_loss=True: {type(module).__name__}.forward(mode="loss") failed on a '
                               f'validation batch ({type(e).__name__}: {e}); does the validation pipeline load '
                               'the annotations (e.g. LoadAnnotations before PackDetInputs)?') from e
        _, log_vars = module.parse_losses(losses)
    return {k: v.detach() for k, v in log_vars.items()}, _batch_size(data)


class LossAverager:
    """Average loss terms over a dataset, weighting each batch by its size: ``sum_b(n_b * l_b) / sum_b n_b``.

    Sums stay on the device (no sync per batch); ``compute()`` all-reduces them across ranks and converts to
    Python floats once.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def update(self, log_vars: dict[str, torch.Tensor], batch_size: int) -> None:
        for key, value in log_vars.items():
            value = value.detach().float() * batch_size
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += batch_size

    def compute(self, prefix: str = 'val/') -> dict[str, float]:
        """``{prefix + key: mean}`` ordered with the terms first and the total ``loss`` last, as in training
        logs; empty when nothing was added."""
        if not self.sums:
            return {}
        from kiln.dist import all_reduce
        keys = [k for k in self.sums if k != 'loss'] + (['loss'] if 'loss' in self.sums else [])
        stacked = torch.stack([self.sums[k] for k in keys] + [torch.tensor(float(self.count),
                                                                        device=self.sums[keys[0]].device)])
        all_reduce(stacked, op='sum')
        values = stacked.tolist()
        total = values[-1]
        return {prefix + k: v / total for k, v in zip(keys, values[:-1])}
