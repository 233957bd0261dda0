"""Feature Pyramid Network (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017).

Module layout and options follow MMDetection 3.x ``FPN`` (``lateral_convs.i.conv``, ``fpn_convs.i.conv``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kiln.model import BaseModule
from kiln.registry import MODELS

from ..layers import ConvModule

_EXTRA_MODES = ('on_input', 'on_lateral', 'on_output')


@MODELS.register_module()
class FPN(BaseModule):
    """Top-down feature pyramid with lateral 1x1 convs, 3x3 output convs and optional extra levels.

    Args:
        in_channels: channels of each input level (backbone outputs, finest first).
        out_channels: channels of every output level.
        num_outs: number of output levels; levels beyond the used inputs are extra levels made by stride-2
            max-pooling (``add_extra_convs=False``) or stride-2 3x3 convs.
        start_level: first input level used.
        end_level: last input level used (-1: the last one); with ``end_level != -1`` no extra level is allowed.
        add_extra_convs: ``False``, ``True`` (= ``'on_input'``), ``'on_input'`` (first extra conv on the last
            used backbone level), ``'on_lateral'`` (on its lateral) or ``'on_output'`` (on its FPN output).
        relu_before_extra_convs: ReLU before the 2nd, 3rd ... extra conv.
        no_norm_on_lateral: no norm layer on the lateral convs.
        conv_cfg, norm_cfg, act_cfg: :class:`ConvModule` configs (default: plain convs).
        upsample_cfg: keyword arguments of ``F.interpolate`` (``mode``; with ``scale_factor`` the sizes are not
            matched explicitly).
        init_cfg: default Xavier-uniform on every ``Conv2d``.

    Input: tuple of float32 (N, in_channels[i], H_i, W_i). Output: tuple of ``num_outs`` float32
    (N, out_channels, H_j, W_j), finest first; each extra level halves the spatial size (rounding up).

    Raises:
        ValueError: inconsistent levels / ``add_extra_convs`` (at construction) or a wrong number of inputs or
            channels (at forward).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int, start_level: int = 0,
                 end_level: int = -1, add_extra_convs: bool | str = False, relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False, conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] | None = None, act_cfg: Mapping[str, Any] | None = None,
                 upsample_cfg: Mapping[str, Any] = dict(mode='nearest'),
                 init_cfg: Any = dict(type='Xavier', layer='Conv2d', distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, (list, tuple)):
            raise ValueError(f'FPN in_channels must be a list of ints, got {in_channels!r}')
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_ins = len(in_channels)
        self.num_outs = num_outs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.no_norm_on_lateral = no_norm_on_lateral
        self.upsample_cfg = dict(upsample_cfg)
        if end_level == -1 or end_level == self.num_ins - 1:
            self.backbone_end_level = self.num_ins
            if num_outs < self.num_ins - start_level:
                raise ValueError(f'FPN num_outs={num_outs} is smaller than the {self.num_ins - start_level} '
                                 f'used input levels')
        else:
            self.backbone_end_level = end_level + 1
            if end_level >= self.num_ins or num_outs != end_level - start_level + 1:
                raise ValueError(f'FPN with end_level={end_level} needs end_level < {self.num_ins} and '
                                 f'num_outs == end_level - start_level + 1, got num_outs={num_outs}')
        self.start_level = start_level
        self.end_level = end_level
        if isinstance(add_extra_convs, str):
            if add_extra_convs not in _EXTRA_MODES:
                raise ValueError(f'FPN add_extra_convs must be a bool or one of {_EXTRA_MODES}, '
                                 f'got {add_extra_convs!r}')
        elif add_extra_convs:
            add_extra_convs = 'on_input'
        self.add_extra_convs = add_extra_convs

        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(self.start_level, self.backbone_end_level):
            self.lateral_convs.append(ConvModule(
                in_channels[i], out_channels, 1, conv_cfg=conv_cfg,
                norm_cfg=None if no_norm_on_lateral else norm_cfg, act_cfg=act_cfg, inplace=False))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                                             norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))
        extra_levels = num_outs - self.backbone_end_level + self.start_level
        if self.add_extra_convs and extra_levels >= 1:
            for i in range(extra_levels):
                if i == 0 and self.add_extra_convs == 'on_input':
                    chn = self.in_channels[self.backbone_end_level - 1]
                else:
                    chn = out_channels
                self.fpn_convs.append(ConvModule(chn, out_channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
                                                 norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(inputs) != self.num_ins:
            raise ValueError(f'FPN expects {self.num_ins} input levels (in_channels={self.in_channels}), '
                             f'got {len(inputs)}')
        for i, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if x.shape[1] != c:
                raise ValueError(f'FPN input level {i} has {x.shape[1]} channels, expected {c}')
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        used = len(laterals)
        for i in range(used - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            if self.lateral_convs[i - 1].with_activation:  # an activation's backward needs its output intact
                laterals[i - 1] = laterals[i - 1] + up
            else:  # in place: a conv / norm output is not saved for backward, so no extra feature map per level
                laterals[i - 1] += up
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        if self.num_outs > used:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - used):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                if self.add_extra_convs == 'on_input':
                    source = inputs[self.backbone_end_level - 1]
                elif self.add_extra_convs == 'on_lateral':
                    source = laterals[-1]
                else:
                    source = outs[-1]
                outs.append(self.fpn_convs[used](source))
                for i in range(used + 1, self.num_outs):
                    prev = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](prev))
        return tuple(outs)
