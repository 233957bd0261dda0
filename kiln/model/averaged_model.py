"""Averaged copies of a model (EMA) on top of ``torch.optim.swa_utils.AveragedModel``.

MMEngine's momentum convention: ``averaged = (1 - momentum) * averaged + momentum * source`` (so
``momentum = 1 - decay`` of torch's ``get_ema_multi_avg_fn``). The first ``update_parameters`` call copies the
source model; afterwards the average is updated every ``interval`` calls.

Reference: MMEngine ``mmengine.model.averaged_model`` (behaviour), ``torch.optim.swa_utils.AveragedModel``
(machinery: it groups tensors by device/dtype and calls our ``multi_avg_fn`` with ``torch._foreach`` lists).
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from kiln.registry import MODELS


class BaseAveragedModel(AveragedModel):
    """A frozen copy of ``model`` (``.module``) whose parameters are averaged by ``update_parameters(model)``.

    Subclasses implement ``avg_func(averaged: list[Tensor], source: list[Tensor], steps: int)``, updating the
    floating-point ``averaged`` tensors in place. Non-floating tensors (e.g. BatchNorm's ``num_batches_tracked``
    when ``update_buffers=True``) are copied from the source.

    Args:
        model: the model to average (deep-copied; the copy has ``requires_grad=False``).
        interval: average every ``interval`` calls of ``update_parameters`` (the first call always copies).
        device: put the copy on this device (default: where ``model`` is).
        update_buffers: also average the buffers (BN running stats); otherwise buffers are copied from the
            source at every call.

    Attributes:
        steps: int64 0-dim buffer counting ``update_parameters`` calls (saved in the state dict, as MMEngine).

    Raises:
        ValueError: ``interval`` < 1.
    """

    def __init__(self, model: nn.Module, interval: int = 1, device: torch.device | str | None = None,
                 update_buffers: bool = False) -> None:
        if int(interval) < 1:
            raise ValueError(f'{type(self).__name__}: interval must be >= 1, got {interval}')
        super().__init__(model, device=device, multi_avg_fn=self._multi_avg_fn, use_buffers=update_buffers)
        self.module.requires_grad_(False)
        self.interval = int(interval)
        self.update_buffers = update_buffers
        # Host-side mirror of `steps`: no device sync per iteration; refreshed after load_state_dict.
        self._steps = 0
        self.register_buffer('steps', torch.tensor(0, dtype=torch.long, device=device))
        self.register_load_state_dict_post_hook(_refresh_steps)

    def avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        """Update the floating-point ``averaged`` tensors in place from ``source`` (same shapes/devices)."""
        raise NotImplementedError

    def _multi_avg_fn(self, averaged: list[Tensor], source: list[Tensor], n_averaged: Any) -> None:
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            self.avg_func(averaged, source, self._steps)
        else:
            torch._foreach_copy_(averaged, source)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Copy (first call) or average (every ``interval``-th call) ``model``'s parameters into ``.module``.

        ``model`` must have the same architecture as the averaged copy (unwrap DDP first).
        """
        if self._steps == 0 or self._steps % self.interval == 0:
            if self._steps == 0:
                self.n_averaged.zero_()
            super().update_parameters(model)
        elif not self.use_buffers:
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.copy_(b_src.detach().to(b_avg.device))
        self._steps += 1
        self.steps += 1

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        # MMEngine's averaged models have no `n_averaged`: derive it from `steps` so their checkpoints load.
        if prefix + 'n_averaged' not in state_dict and prefix + 'steps' in state_dict:
            state_dict[prefix + 'n_averaged'] = state_dict[prefix + 'steps'].clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def _refresh_steps(module: nn.Module, incompatible_keys: Any) -> None:
    module._steps = int(module.steps)


@MODELS.register_module()
class ExponentialMovingAverage(BaseAveragedModel):
    """Exponential moving average of the parameters: ``ema = (1 - momentum) * ema + momentum * param``.

    Args:
        model: the model to average.
        momentum: weight of the new value, in (0, 1); MMEngine's default 0.0002 (= decay 0.9998).
        interval, device, update_buffers: see ``BaseAveragedModel``.

    Raises:
        ValueError: ``momentum`` outside (0, 1).
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002, interval: int = 1,
                 device: torch.device | str | None = None, update_buffers: bool = False) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'{type(self).__name__}: momentum must be in (0, 1), got {momentum}')
        if momentum > 0.5:
            warnings.warn(f'{type(self).__name__}: momentum={momentum} > 0.5 weights new values more than the '
                          'average; kiln follows MMEngine (ema = (1 - momentum) * ema + momentum * param), did you '
                          'mean 1 - momentum?', stacklevel=2)
        super().__init__(model, interval, device, update_buffers)
        self.momentum = momentum

    def avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        torch._foreach_lerp_(averaged, source, self.momentum)


@MODELS.register_module()
class MomentumAnnealingEMA(ExponentialMovingAverage):
    """EMA whose momentum starts high and anneals: ``momentum_t = max(momentum, gamma / (gamma + t))`` with
    ``t`` the number of previous ``update_parameters`` calls (as in MMEngine / YOLOX-style EMA warm-up).

    Args:
        gamma: annealing speed (> 0); larger keeps the momentum high for longer.
        model, momentum, interval, device, update_buffers: see ``ExponentialMovingAverage``.

    Raises:
        ValueError: ``gamma`` <= 0 or ``momentum`` outside (0, 1).
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002, gamma: int = 100, interval: int = 1,
                 device: torch.device | str | None = None, update_buffers: bool = False) -> None:
        if gamma <= 0:
            raise ValueError(f'{type(self).__name__}: gamma must be > 0, got {gamma}')
        super().__init__(model, momentum, interval, device, update_buffers)
        self.gamma = gamma

    def avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        momentum = max(self.momentum, self.gamma / (self.gamma + steps))
        torch._foreach_lerp_(averaged, source, momentum)


@MODELS.register_module()
class StochasticWeightAverage(BaseAveragedModel):
    """Stochastic Weight Averaging: the equal-weight running mean of the parameters seen every ``interval``
    calls, ``swa_n = swa_{n-1} + (param - swa_{n-1}) / (n + 1)`` (Izmailov et al., "Averaging Weights Leads to
    Wider Optima and Better Generalization", UAI 2018).

    The running mean is computed by ``torch.optim.swa_utils.get_swa_multi_avg_fn``; ``n`` is the number of
    averages taken so far (``steps // interval``), as in MMEngine's ``StochasticWeightAverage``. Use it through
    ``EMAHook(ema_type='StochasticWeightAverage', begin_epoch=...)`` or ``custom_hooks``; after training, BN
    statistics of the averaged model may need ``torch.optim.swa_utils.update_bn``.

    Args:
        model, interval, device, update_buffers: see ``BaseAveragedModel``.
    """

    def __init__(self, model: nn.Module, interval: int = 1, device: torch.device | str | None = None,
                 update_buffers: bool = False) -> None:
        from torch.optim.swa_utils import get_swa_multi_avg_fn
        super().__init__(model, interval, device, update_buffers)
        self._swa_fn = get_swa_multi_avg_fn()

    def avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        n_averaged = torch.tensor(steps // self.interval, device=averaged[0].device)
        self._swa_fn(averaged, source, n_averaged)
