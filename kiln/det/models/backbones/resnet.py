"""ResNet backbone (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Behaviour and module names follow MMDetection 3.x ``mmdet.models.backbones.ResNet`` (``conv1``, ``bn1`` / ``gn1``,
``layer1``..``layer4``, ``downsample.0/1``), so MMDetection checkpoints and torchvision ImageNet weights
(``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``) load unchanged.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kiln.model import BaseModule
from kiln.registry import MODELS

from ..layers import build_conv_layer, build_norm_layer
from ..layers.conv_bn import clear_bn_folding_cache, conv_bn_forward


def _conv3x3(conv_cfg: Mapping[str, Any] | None, inplanes: int, planes: int, stride: int = 1,
             dilation: int = 1) -> nn.Module:
    return build_conv_layer(conv_cfg, inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation,
                            bias=False)


def _shortcut(downsample: nn.Module | None, x: Tensor, fold_bn: bool) -> Tensor:
    """The block's shortcut: ``x``, or ``downsample(x)`` (``[AvgPool2d,] conv, norm``) with its conv + norm pair
    through :func:`conv_bn_forward`."""
    if downsample is None:
        return x
    if not isinstance(downsample, nn.Sequential) or len(downsample) < 2:
        return downsample(x)
    for layer in downsample[:-2]:
        x = layer(x)
    return conv_bn_forward(downsample[-2], downsample[-1], x, fold_bn)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or ``downsample``) shortcut; ResNet-18/34 (MMDetection ``BasicBlock``).

    Children: ``conv1``, ``<norm>1``, ``conv2``, ``<norm>2``, ``downsample`` (``<norm>`` = ``bn`` or ``gn``
    from ``norm_cfg``, MMDetection's names). ``style`` is accepted for symmetry and has no effect here.
    Input float (N, inplanes, H, W) -> (N, planes, H / stride, W / stride).
    """

    expansion = 1
    fold_bn = True  # fold each BatchNorm into its conv in eval mode without autograd (layers/conv_bn.py)

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = 'pytorch', with_cp: bool = False,
                 conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] = dict(type='BN')) -> None:
        super().__init__()
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.conv1 = _conv3x3(conv_cfg, inplanes, planes, stride, dilation)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = _conv3x3(conv_cfg, planes, planes)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride, self.dilation, self.with_cp = stride, dilation, with_cp

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(conv_bn_forward(self.conv1, self.norm1, x, self.fold_bn))
        out = conv_bn_forward(self.conv2, self.norm2, out, self.fold_bn)
        identity = _shortcut(self.downsample, x, self.fold_bn)
        out += identity  # in place (as torchvision / MMDetection): no fresh feature-map-sized tensor per block
        return out

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels) bottleneck; ResNet-50/101/152 (MMDetection ``Bottleneck``).

    ``style='pytorch'`` puts the stride on the 3x3 conv, ``'caffe'`` on the first 1x1 conv (MSRA / Detectron
    weights). Children: ``conv1..3``, ``<norm>1..3``, ``downsample``.
    Input float (N, inplanes, H, W) -> (N, 4 * planes, H / stride, W / stride).
    """

    expansion = 4
    fold_bn = True  # fold each BatchNorm into its conv in eval mode without autograd (layers/conv_bn.py)

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = 'pytorch', with_cp: bool = False,
                 conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] = dict(type='BN')) -> None:
        super().__init__()
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f"Bottleneck style must be 'pytorch' or 'caffe', got {style!r}")
        conv1_stride, conv2_stride = (1, stride) if style == 'pytorch' else (stride, 1)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.norm3_name, norm3 = build_norm_layer(norm_cfg, planes * self.expansion, postfix=3)
        self.conv1 = build_conv_layer(conv_cfg, inplanes, planes, 1, stride=conv1_stride, bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = _conv3x3(conv_cfg, planes, planes, conv2_stride, dilation)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(conv_cfg, planes, planes * self.expansion, 1, bias=False)
        self.add_module(self.norm3_name, norm3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride, self.dilation, self.style, self.with_cp = stride, dilation, style, with_cp

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    @property
    def norm3(self) -> nn.Module:
        return getattr(self, self.norm3_name)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(conv_bn_forward(self.conv1, self.norm1, x, self.fold_bn))
        out = self.relu(conv_bn_forward(self.conv2, self.norm2, out, self.fold_bn))
        out = conv_bn_forward(self.conv3, self.norm3, out, self.fold_bn)
        identity = _shortcut(self.downsample, x, self.fold_bn)
        out += identity  # in place (as torchvision / MMDetection): no fresh feature-map-sized tensor per block
        return out

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet backbone returning the feature maps of the stages in ``out_indices``.

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: channels of the input image.
        stem_channels: output channels of the stem (default ``base_channels``).
        base_channels: width of the first stage (64).
        num_stages: number of residual stages used, 1..4.
        strides: stride of the first block of each stage.
        dilations: dilation of each stage (> 1 only for Bottleneck depths 50/101/152).
        out_indices: stages whose output is returned (0-based).
        style: ``'pytorch'`` (stride on the 3x3 conv of a Bottleneck) or ``'caffe'`` (stride on the first 1x1).
        avg_down: use AvgPool + stride-1 conv in the downsample shortcut (ResNet-D).
        frozen_stages: stages (and the stem, when >= 0) to freeze: their params get ``requires_grad=False``
            and they stay in eval mode; -1 freezes nothing.
        conv_cfg: conv config for the stem (``None`` -> ``nn.Conv2d``).
        norm_cfg: norm config (``BN``, ``SyncBN``, ``GN`` with ``num_groups``; ``requires_grad``).
        norm_eval: keep every BatchNorm in eval mode (frozen running stats) during training.
        zero_init_residual: :meth:`init_weights` sets the last norm weight of every block to 0.
        with_cp: recompute each block's activations in the backward pass (``torch.utils.checkpoint``) to save
            memory.
        pretrained: deprecated, use ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        init_cfg: initialisation config; ``None`` uses Kaiming for convs and 1/0 for norms.

    Input: float32 (N, in_channels, H, W). Output: tuple of float32 (N, C_i, H / s_i, W / s_i) for each i in
    ``out_indices`` with C_i = ``base_channels * 2**i * expansion`` (expansion 1 for depth 18/34, 4 otherwise) and
    s_i = 4 * prod(strides[1..i]) (4, 8, 16, 32 by default).

    Raises:
        KeyError: unsupported ``depth``.
        ValueError: inconsistent ``num_stages`` / ``strides`` / ``dilations`` / ``out_indices`` / ``style``.
        NotImplementedError: ``deep_stem``, ``dcn`` or ``plugins`` requested.
    """

    fold_bn = True  # the stem's conv1 + norm1 (the blocks have their own flag); see layers/conv_bn.py
    arch_settings = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                     50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
                     152: (Bottleneck, (3, 8, 36, 3))}

    def __init__(self, depth: int, in_channels: int = 3, stem_channels: int | None = None,
                 base_channels: int = 64, num_stages: int = 4, strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1), out_indices: Sequence[int] = (0, 1, 2, 3),
                 style: str = 'pytorch', deep_stem: bool = False, avg_down: bool = False,
                 frozen_stages: int = -1, conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] = dict(type='BN', requires_grad=True), norm_eval: bool = True,
                 dcn: Any = None, stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: Any = None, with_cp: bool = False, zero_init_residual: bool = True,
                 pretrained: str | None = None, init_cfg: Any = None) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('ResNet: give either init_cfg or pretrained, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f'ResNet depth {depth!r} is not supported; expected one of {sorted(self.arch_settings)}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'ResNet num_stages must be in 1..4, got {num_stages}')
        if len(strides) < num_stages or len(dilations) < num_stages:
            raise ValueError(f'ResNet strides {tuple(strides)} and dilations {tuple(dilations)} need '
                             f'{num_stages} entries (num_stages)')
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ValueError(f'ResNet out_indices {tuple(out_indices)} must lie in 0..{num_stages - 1}')
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f"ResNet style must be 'pytorch' or 'caffe', got {style!r}")
        for flag, name in ((deep_stem, 'deep_stem'), (dcn is not None, 'dcn'), (plugins is not None, 'plugins')):
            if flag:
                raise NotImplementedError(f'ResNet: {name} is not supported by kiln')
        self.depth = depth
        self.num_stages = num_stages
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.out_indices = tuple(out_indices)
        self.style = style
        self.avg_down = avg_down
        self.frozen_stages = frozen_stages
        self.norm_cfg = dict(norm_cfg)
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.with_cp = with_cp
        self.conv_cfg = conv_cfg
        stem_channels = base_channels if stem_channels is None else stem_channels

        block, stage_blocks = self.arch_settings[depth]
        self.block = block
        self.stage_blocks = stage_blocks[:num_stages]
        if block is BasicBlock and any(d != 1 for d in self.dilations[:num_stages]):
            raise ValueError(f'ResNet-{depth} (BasicBlock) does not support dilations {self.dilations}')

        self.conv1 = build_conv_layer(conv_cfg, in_channels, stem_channels, kernel_size=7, stride=2, padding=3,
                                      bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.res_layers: list[str] = []
        inplanes = stem_channels
        for i in range(num_stages):
            planes = base_channels * 2 ** i
            layer = self._make_layer(block, inplanes, planes, stage_blocks[i], self.strides[i], self.dilations[i])
            inplanes = planes * block.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
        self.feat_dim = inplanes
        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        """The stem normalisation layer."""
        return getattr(self, self.norm1_name)

    def _make_layer(self, block: type, inplanes: int, planes: int, num_blocks: int, stride: int,
                    dilation: int) -> nn.Sequential:
        """One stage (MMDetection ``ResLayer``): the first block changes stride / channels through a
        ``downsample`` shortcut (1x1 conv + norm, or AvgPool + stride-1 conv + norm with ``avg_down``)."""
        downsample = None
        out_planes = planes * block.expansion
        if stride != 1 or inplanes != out_planes:
            layers: list[nn.Module] = []
            conv_stride = stride
            if self.avg_down and stride != 1:
                conv_stride = 1
                layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
            layers += [build_conv_layer(self.conv_cfg, inplanes, out_planes, 1, stride=conv_stride, bias=False),
                       build_norm_layer(self.norm_cfg, out_planes)[1]]
            downsample = nn.Sequential(*layers)
        common = dict(dilation=dilation, style=self.style, with_cp=self.with_cp, conv_cfg=self.conv_cfg,
                      norm_cfg=self.norm_cfg)
        blocks = [block(inplanes, planes, stride=stride, downsample=downsample, **common)]
        blocks += [block(out_planes, planes, stride=1, **common) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            modules = [self.conv1, self.norm1] + [getattr(self, f'layer{i}')
                                                  for i in range(1, min(self.frozen_stages, self.num_stages) + 1)]
            for m in modules:
                m.eval()
                for param in m.parameters():
                    param.requires_grad = False

    def init_weights(self) -> None:
        """Default (``init_cfg=None``): Kaiming-normal fan_out convs, norms 1/0, and (``zero_init_residual``)
        zero weight on the last norm of each residual block. Otherwise defer to ``BaseModule.init_weights``."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        self._is_init = True
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_init_residual:
            for name in self.res_layers:
                for blk in getattr(self, name):
                    norm = blk.norm3 if isinstance(blk, Bottleneck) else blk.norm2
                    if norm.weight is not None:
                        nn.init.zeros_(norm.weight)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.maxpool(self.relu(conv_bn_forward(self.conv1, self.norm1, x, self.fold_bn)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'ResNet':
        """Switch train/eval mode, keeping frozen stages and (``norm_eval``) BatchNorms in eval mode."""
        super().train(mode)
        if mode:
            clear_bn_folding_cache(self)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
