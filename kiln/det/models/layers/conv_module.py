"""``ConvModule``: conv + norm + activation with MMCV-compatible child names (``conv``, ``bn``/``gn``, ``activate``)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from .conv_bn import conv_bn_forward
from .norm import build_norm_layer

_CONV_LAYERS: dict[str, type[nn.Module]] = {
    'Conv': nn.Conv2d, 'Conv1d': nn.Conv1d, 'Conv2d': nn.Conv2d, 'Conv3d': nn.Conv3d,
}

_ACT_LAYERS: dict[str, type[nn.Module]] = {
    'ReLU': nn.ReLU, 'LeakyReLU': nn.LeakyReLU, 'PReLU': nn.PReLU, 'RReLU': nn.RReLU, 'ReLU6': nn.ReLU6,
    'ELU': nn.ELU, 'Sigmoid': nn.Sigmoid, 'Tanh': nn.Tanh, 'GELU': nn.GELU, 'SiLU': nn.SiLU, 'Swish': nn.SiLU,
    'HSwish': nn.Hardswish, 'HSigmoid': nn.Hardsigmoid, 'Mish': nn.Mish,
}
_INPLACE_ACTS = {'ReLU', 'LeakyReLU', 'ReLU6', 'ELU', 'SiLU', 'Swish', 'HSwish', 'HSigmoid', 'Mish', 'RReLU'}


def build_conv_layer(cfg: Mapping[str, Any] | None, *args: Any, **kwargs: Any) -> nn.Module:
    """Build a convolution from ``conv_cfg`` (``None`` or ``dict(type='Conv2d')`` -> ``nn.Conv2d``).

    Positional/keyword arguments go to the torch layer (``in_channels, out_channels, kernel_size, ...``).

    Raises:
        KeyError: unknown conv type (deformable convs such as ``DCNv2`` are not provided by kiln).
    """
    cfg = dict(type='Conv2d') if cfg is None else dict(cfg)
    layer_type = cfg.pop('type', 'Conv2d')
    if layer_type not in _CONV_LAYERS:
        raise KeyError(f'conv_cfg type {layer_type!r} is not supported; expected one of {tuple(_CONV_LAYERS)}')
    return _CONV_LAYERS[layer_type](*args, **kwargs, **cfg)


def build_activation_layer(cfg: Mapping[str, Any]) -> nn.Module:
    """Build an activation from ``act_cfg``, e.g. ``dict(type='ReLU', inplace=True)``.

    Raises:
        KeyError: unknown activation type.
    """
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise TypeError(f'act_cfg must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    layer_type = cfg.pop('type')
    if layer_type not in _ACT_LAYERS:
        raise KeyError(f'act_cfg type {layer_type!r} is not supported; expected one of {tuple(_ACT_LAYERS)}')
    if layer_type not in _INPLACE_ACTS:
        cfg.pop('inplace', None)
    return _ACT_LAYERS[layer_type](**cfg)


class ConvModule(nn.Module):
    """Convolution followed by an optional normalisation and an optional activation (MMCV ``ConvModule``).

    Children are named ``conv``, the norm abbreviation (``bn``/``gn``/``ln``/``in``) and ``activate``, so that
    MMDetection state-dict keys (``neck.lateral_convs.0.conv.weight``, ``bbox_head.cls_convs.0.gn.weight``) load.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups: as ``nn.Conv2d``.
        bias: ``'auto'`` means a bias only when there is no norm layer.
        conv_cfg: ``None`` (``nn.Conv2d``) or ``dict(type='Conv2d'|'Conv1d'|'Conv3d')``.
        norm_cfg: ``None`` or a :func:`build_norm_layer` config.
        act_cfg: ``None`` or an activation config; default ``dict(type='ReLU')``.
        inplace: in-place activation (where the activation supports it).
        order: the order of ``'conv'``, ``'norm'``, ``'act'``.

    Input ``(N, in_channels, H, W)`` float; output ``(N, out_channels, H', W')``.

    With the norm right after the conv, a BatchNorm is folded into the conv in eval mode without autograd
    (``fold_bn``, see :mod:`kiln.det.models.layers.conv_bn`).
    """

    fold_bn = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool | str = 'auto',
                 conv_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None,
                 act_cfg: Mapping[str, Any] | None = dict(type='ReLU'), inplace: bool = True,
                 padding_mode: str = 'zeros', order: tuple[str, str, str] = ('conv', 'norm', 'act')) -> None:
        super().__init__()
        if set(order) != {'conv', 'norm', 'act'} or len(order) != 3:
            raise ValueError(f'ConvModule order must be a permutation of conv/norm/act, got {order}')
        if bias != 'auto' and not isinstance(bias, bool):
            raise ValueError(f"ConvModule bias must be 'auto' or a bool, got {bias!r}")
        self.order = tuple(order)
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        self.act_cfg = dict(act_cfg) if act_cfg is not None else None
        if bias == 'auto':
            bias = not self.with_norm
        self.with_bias = bias
        self.conv = build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size, stride=stride,
                                     padding=padding, dilation=dilation, groups=groups, bias=bias,
                                     padding_mode=padding_mode)
        self.in_channels, self.out_channels = in_channels, out_channels
        if self.with_norm:
            norm_channels = out_channels if order.index('norm') > order.index('conv') else in_channels
            self.norm_name, norm = build_norm_layer(norm_cfg, norm_channels)
            self.add_module(self.norm_name, norm)
        else:
            self.norm_name = None
        if self.with_activation:
            act_cfg_ = dict(act_cfg)
            act_cfg_.setdefault('inplace', inplace)
            self.activate = build_activation_layer(act_cfg_)
        self.reset_parameters()

    @property
    def norm(self) -> nn.Module | None:
        """The normalisation layer (or ``None``)."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out) conv weights and zero bias; norm weight 1, bias 0 (as MMCV, at construction).

        Deliberately not named ``init_weights``: a parent's ``init_cfg`` (e.g. FPN's Xavier, FCOS's Normal) decides
        the final initialisation, as in MMDetection where ConvModules sit inside plain ``nn.ModuleList``s."""
        nonlinearity, a = 'relu', 0.0
        if self.with_activation and self.act_cfg['type'] == 'LeakyReLU':
            nonlinearity, a = 'leaky_relu', self.act_cfg.get('negative_slope', 0.01)
        nn.init.kaiming_normal_(self.conv.weight, a=a, mode='fan_out', nonlinearity=nonlinearity)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        norm = self.norm
        if norm is not None and getattr(norm, 'weight', None) is not None:
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def forward(self, x: Tensor, activate: bool = True, norm: bool = True) -> Tensor:
        folded = norm and self.with_norm and self.order.index('norm') == self.order.index('conv') + 1
        for layer in self.order:
            if layer == 'conv':
                x = conv_bn_forward(self.conv, self.norm, x, self.fold_bn) if folded else self.conv(x)
            elif layer == 'norm' and norm and self.with_norm and not folded:
                x = self.norm(x)
            elif layer == 'act' and activate and self.with_activation:
                x = self.activate(x)
        return x
