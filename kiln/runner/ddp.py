"""``DistributedDataParallel`` that keeps kiln's ``train_step`` / ``val_step`` / ``test_step`` interface."""
from __future__ import annotations

from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as _TorchDDP

__all__ = ['DistributedDataParallel']


class DistributedDataParallel(_TorchDDP):
    """``torch.nn.parallel.DistributedDataParallel`` for a kiln ``BaseModel`` (MMEngine's
    MMDistributedDataParallel).

    ``train_step`` runs the wrapped model's data preprocessor, then the forward pass *through DDP* (so that
    gradients are all-reduced during ``backward``), ``parse_losses`` and ``optim_wrapper.update_params``.
    ``val_step`` / ``test_step`` call the wrapped model's directly (no gradient sync needed).
    """

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the wrapped model's ``log_vars`` (detached 0-dim tensors)."""
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: Any) -> list:
        """Predictions of the wrapped model (``module.val_step``)."""
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        """Predictions of the wrapped model (``module.test_step``)."""
        return self.module.test_step(data)

    def _run_forward(self, data: Any, mode: str) -> Any:
        if isinstance(data, dict):
            return self(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self(*data, mode=mode)
        raise TypeError(f'the data preprocessor must return a dict, list or tuple, got {type(data).__name__}')
