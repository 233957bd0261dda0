"""``DistributedDataParallel`` that keeps kiln's ``train_step`` / ``val_step`` / ``test_step`` interface.

Reference: MMEngine's ``MMDistributedDataParallel`` (behaviour), on ``torch.nn.parallel.DistributedDataParallel``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as _TorchDDP

from kiln.registry import MODEL_WRAPPERS

__all__ = ['DistributedDataParallel', 'KilnDistributedDataParallel']


@MODEL_WRAPPERS.register_module(name=['KilnDistributedDataParallel', 'MMDistributedDataParallel'])
class DistributedDataParallel(_TorchDDP):
    """``torch.nn.parallel.DistributedDataParallel`` for a kiln ``BaseModel`` (MMEngine's
    ``MMDistributedDataParallel``; registered in ``MODEL_WRAPPERS`` as ``KilnDistributedDataParallel`` and
    ``MMDistributedDataParallel``).

    ``train_step`` runs the wrapped model's data preprocessor, then the forward pass *through DDP* inside
    ``optim_wrapper.optim_context(self)`` (which enters ``no_sync()`` inside a gradient-accumulation window, so
    gradients are all-reduced only on the last ``backward`` of the window), ``parse_losses`` and
    ``optim_wrapper.update_params``. ``val_step`` / ``test_step`` call the wrapped model's directly (no gradient
    sync needed).

    Args:
        module: the model (a kiln ``BaseModel``), already on its device.
        **kwargs: passed to ``torch.nn.parallel.DistributedDataParallel`` (``find_unused_parameters``,
            ``broadcast_buffers``, ``bucket_cap_mb``...). ``device_ids`` defaults to the current CUDA device
            when the module's parameters are on CUDA, else None (CPU / gloo).

    Raises:
        RuntimeError: ``torch.distributed`` is not initialised (from torch).
    """

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        if 'device_ids' not in kwargs:
            param = next(module.parameters(), None)
            kwargs['device_ids'] = [torch.cuda.current_device()] if param is not None and param.is_cuda else None
        super().__init__(module, **kwargs)

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the wrapped model's ``log_vars`` (detached 0-dim tensors)."""
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, True)
            losses = _run_forward(self, data, mode='loss')
        loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: Any) -> list:
        """Predictions of the wrapped model (``module.val_step``)."""
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        """Predictions of the wrapped model (``module.test_step``)."""
        return self.module.test_step(data)


KilnDistributedDataParallel = DistributedDataParallel


def _run_forward(model: nn.Module, data: Any, mode: str) -> Any:
    if isinstance(data, dict):
        return model(**data, mode=mode)
    if isinstance(data, (list, tuple)):
        return model(*data, mode=mode)
    raise TypeError(f'the data preprocessor must return a dict, list or tuple, got {type(data).__name__}')
