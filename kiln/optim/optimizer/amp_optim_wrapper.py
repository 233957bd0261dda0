"""``AmpOptimWrapper``: automatic mixed precision with ``torch.autocast`` (+ ``GradScaler`` for CUDA fp16)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from kiln.registry import OPTIM_WRAPPERS

from .optim_wrapper import OptimWrapper

_DTYPES = {'float16': torch.float16, 'half': torch.float16, 'bfloat16': torch.bfloat16}


def _module_device_type(model: nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    for b in model.buffers():
        return b.device.type
    return 'cpu'


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(OptimWrapper):
    """Mixed-precision training: the forward pass runs under ``torch.autocast``; parameters (the "master
    weights") and optimizer state stay float32.

    Args:
        dtype: ``'float16'``, ``'bfloat16'``, a ``torch.dtype`` or ``None`` (float16 on CUDA, bfloat16 elsewhere,
            autocast's own defaults).
        loss_scale: used only for float16 (the default dtype on CUDA, or an explicit ``dtype='float16'`` on any
            device), where a ``torch.amp.GradScaler`` prevents gradient underflow: ``'dynamic'`` (default
            scaler), a float (static scale, kept fixed) or a dict of ``GradScaler`` keyword arguments. bfloat16
            has float32's range and needs no scaling.
        use_fsdp: accepted for MMEngine config compatibility and ignored (no ``ShardedGradScaler``; use
            bfloat16 with FSDP).
        **kwargs: ``optimizer``, ``accumulative_counts``, ``clip_grad`` of ``OptimWrapper``.

    The scaler state is saved in ``state_dict()['loss_scaler']``.

    Raises:
        ValueError: unknown ``dtype`` or malformed ``loss_scale``.
    """

    def __init__(self, loss_scale: str | float | dict = 'dynamic', dtype: str | torch.dtype | None = None,
                 use_fsdp: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"AmpOptimWrapper: dtype must be 'float16' or 'bfloat16', got {dtype!r}")
            dtype = _DTYPES[dtype]
        elif dtype is not None and dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper: dtype must be torch.float16 or torch.bfloat16, got {dtype}')
        self.cast_dtype: torch.dtype | None = dtype
        device_type = self._param_device_type()
        self.loss_scaler = None
        self._scale_update_param = None
        if (device_type == 'cuda' and dtype in (None, torch.float16)) or dtype == torch.float16:
            if loss_scale == 'dynamic':
                self.loss_scaler = torch.amp.GradScaler(device_type)
            elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
                self._scale_update_param = float(loss_scale)
                self.loss_scaler = torch.amp.GradScaler(device_type, init_scale=float(loss_scale))
            elif isinstance(loss_scale, dict):
                self.loss_scaler = torch.amp.GradScaler(device_type, **loss_scale)
            else:
                raise ValueError(f"AmpOptimWrapper: loss_scale must be 'dynamic', a number or a dict, "
                                 f'got {loss_scale!r}')

    def _param_device_type(self) -> str:
        for g in self.optimizer.param_groups:
            for p in g['params']:
                return p.device.type
        return 'cpu'

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_func is not None:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Accumulation context of ``OptimWrapper`` plus ``torch.autocast`` on the model's device type."""
        with super().optim_context(model):
            with torch.autocast(device_type=_module_device_type(model), dtype=self.cast_dtype):
                yield

    def state_dict(self) -> dict:
        state = dict(self.optimizer.state_dict())
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        self.optimizer.load_state_dict(state_dict)
