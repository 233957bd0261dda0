"""Normalisation-layer factory with MMCV-compatible names (``bn``, ``gn``, ...)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

# type name -> (layer class, abbreviation used in the module name)
_NORM_LAYERS: dict[str, tuple[type[nn.Module], str]] = {
    'BN': (nn.BatchNorm2d, 'bn'),
    'BN1d': (nn.BatchNorm1d, 'bn'),
    'BN2d': (nn.BatchNorm2d, 'bn'),
    'BN3d': (nn.BatchNorm3d, 'bn'),
    'SyncBN': (nn.SyncBatchNorm, 'bn'),
    'GN': (nn.GroupNorm, 'gn'),
    'LN': (nn.LayerNorm, 'ln'),
    'IN': (nn.InstanceNorm2d, 'in'),
    'IN1d': (nn.InstanceNorm1d, 'in'),
    'IN2d': (nn.InstanceNorm2d, 'in'),
    'IN3d': (nn.InstanceNorm3d, 'in'),
}

NORM_TYPES = tuple(_NORM_LAYERS)


def build_norm_layer(cfg: Mapping[str, Any], num_features: int,
                     postfix: int | str = '') -> tuple[str, nn.Module]:
    """Build a normalisation layer from a config dict, as MMCV's ``build_norm_layer``.

    Args:
        cfg: ``dict(type=..., requires_grad=True, **layer_kwargs)``. ``type`` is one of ``BN`` (``BN1d``,
            ``BN2d``, ``BN3d``), ``SyncBN``, ``GN`` (needs ``num_groups``), ``LN``, ``IN`` (``IN1d/2d/3d``).
            Other keys (``eps``, ``momentum``, ``affine`` ...) go to the torch layer.
        num_features: number of channels C of the (N, C, ...) input.
        postfix: appended to the abbreviation to form the name (``bn1``, ``gn``).

    Returns:
        ``(name, layer)``, e.g. ``('bn1', nn.BatchNorm2d(64))``; the name is the attribute name MMCV/MMDetection
        use, so state-dict keys line up.

    Raises:
        TypeError: ``cfg`` is not a dict or has no ``type``.
        KeyError: unknown ``type``.
        ValueError: ``GN`` without ``num_groups`` or with ``num_groups`` not dividing ``num_features``.
    """
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise TypeError(f'norm_cfg must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    layer_type = cfg.pop('type')
    if layer_type not in _NORM_LAYERS:
        raise KeyError(f'norm_cfg type {layer_type!r} is not supported; expected one of {NORM_TYPES}')
    layer_cls, abbr = _NORM_LAYERS[layer_type]
    requires_grad = cfg.pop('requires_grad', True)
    name = f'{abbr}{postfix}'
    if layer_cls is nn.GroupNorm:
        if 'num_groups' not in cfg:
            raise ValueError(f'norm_cfg {dict(type=layer_type, **cfg)} needs "num_groups"')
        if num_features % cfg['num_groups'] != 0:
            raise ValueError(f'GN: num_groups={cfg["num_groups"]} must divide the {num_features} channels')
        layer = nn.GroupNorm(num_channels=num_features, **cfg)
    elif layer_cls is nn.LayerNorm:
        layer = nn.LayerNorm(num_features, **cfg)
    else:
        cfg.setdefault('eps', 1e-5)
        layer = layer_cls(num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return name, layer


def is_norm(module: nn.Module) -> bool:
    """True for batch/group/layer/instance norm layers."""
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                               nn.modules.instancenorm._InstanceNorm))
