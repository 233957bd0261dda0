"""Convolution followed by BatchNorm, with the BatchNorm folded into the convolution at inference.

In eval mode a BatchNorm is a per-channel affine map (``y = (x - running_mean) / sqrt(running_var + eps) * weight +
bias``), so ``bn(conv(x))`` equals one convolution with the weight scaled per output channel and a bias. kiln's
ResNet blocks and :class:`~kiln.det.models.layers.ConvModule` compute their conv + BN pairs this way when the
model is in eval mode and autograd is off (``torch.no_grad`` / ``torch.inference_mode``: the test loop, ``kiln
test``, :class:`~kiln.det.apis.DetInferencer`), which saves one full pass over every feature map per pair. This is
what MMDetection's ``--fuse-conv-bn`` test option does, except that the modules and the state dict are left as
they are: the folded weights are computed from the current parameters and buffers on first use and cached on the
conv module (recomputed whenever a parameter, buffer, device or dtype changes; not part of the state dict). In
training mode, or whenever autograd records (gradients through BN's parameters), the plain ``bn(conv(x))`` runs.

Turn it off for a model with :func:`set_bn_folding` (``model, False``), e.g. to compare with the unfolded
computation; outputs agree within float32 rounding (``tests/test_det/test_models/test_layers/test_conv_bn.py``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['conv_bn_forward', 'set_bn_folding', 'clear_bn_folding_cache']

_CACHE_ATTR = '_kiln_folded_bn'


def _foldable(conv: nn.Module, norm: nn.Module | None, enabled: bool) -> bool:
    return (enabled and isinstance(norm, _BatchNorm) and not norm.training and not torch.is_grad_enabled()
            and norm.track_running_stats and norm.running_mean is not None and type(conv) is nn.Conv2d)


def _folded_params(conv: nn.Conv2d, norm: _BatchNorm) -> tuple[Tensor, Tensor]:
    """The (weight, bias) of the single conv equal to ``norm(conv(x))`` in eval mode, cached on ``conv``."""
    tensors = [conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var]
    key = tuple((t.data_ptr(), t._version, t.device, t.dtype) if t is not None else None for t in tensors)
    key += (norm.eps,)
    cached = conv.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    bias = -norm.running_mean if conv.bias is None else conv.bias - norm.running_mean
    bias = bias * scale
    if norm.bias is not None:
        bias = bias + norm.bias
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    conv.__dict__[_CACHE_ATTR] = (key, weight, bias)
    return weight, bias


def conv_bn_forward(conv: nn.Module, norm: nn.Module | None, x: Tensor, fold: bool = True) -> Tensor:
    """``norm(conv(x))`` (``conv(x)`` when ``norm`` is None), as one convolution with the BatchNorm folded in when
    ``fold`` is true, ``norm`` is a BatchNorm in eval mode with running statistics, ``conv`` a plain
    ``nn.Conv2d`` and autograd is off; otherwise the two modules run one after the other.

    Args:
        conv: the convolution. norm: the normalisation after it, or None. x: float (N, C_in, H, W).
        fold: allow folding (the ``fold_bn`` attribute of the calling block, see :func:`set_bn_folding`).

    Returns:
        float (N, C_out, H', W'), equal to ``norm(conv(x))`` within float rounding.
    """
    if not _foldable(conv, norm, fold):
        x = conv(x)
        return x if norm is None else norm(x)
    weight, bias = _folded_params(conv, norm)
    return conv._conv_forward(x, weight, bias)


def set_bn_folding(model: nn.Module, enabled: bool) -> int:
    """Enable or disable BatchNorm folding at inference (see the module docstring) in every block of ``model``
    that supports it (those with a ``fold_bn`` attribute: ResNet stem / blocks, ``ConvModule``). Enabled by
    default. Returns the number of blocks switched. Disabling also drops the cached folded weights."""
    n = 0
    for m in model.modules():
        if hasattr(m, 'fold_bn'):
            m.fold_bn = bool(enabled)
            n += 1
    if not enabled:
        clear_bn_folding_cache(model)
    return n


def clear_bn_folding_cache(model: nn.Module) -> None:
    """Drop the folded weights cached on the convs of ``model`` (they are rebuilt on the next folded forward);
    ResNet does this when switched to training mode, so that training does not carry a second copy of the
    weights."""
    for m in model.modules():
        m.__dict__.pop(_CACHE_ATTR, None)
