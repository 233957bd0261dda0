"""Anchor-free dense head base: stacked cls/reg conv towers on every level (MMDetection ``AnchorFreeHead``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from kiln.registry import MODELS

from ..layers import ConvModule
from ..task_modules.prior_generators import MlvlPointGenerator
from ..utils import multi_apply
from .base_dense_head import BaseDenseHead


class AnchorFreeHead(BaseDenseHead):
    """Shared conv towers ``cls_convs`` / ``reg_convs`` and predictors ``conv_cls`` / ``conv_reg``.

    Args:
        num_classes: number of foreground classes C.
        in_channels: channels of the neck features.
        feat_channels: channels of the tower convs.
        stacked_convs: tower depth.
        strides: stride of each input level (pixels).
        dcn_on_last_conv: not supported by kiln (raises).
        conv_bias: bias of the tower convs (``'auto'``: only without norm).
        loss_cls, loss_bbox, bbox_coder: registered configs (``kiln.registry.MODELS``).
        conv_cfg, norm_cfg: :class:`ConvModule` configs of the towers.
        train_cfg, test_cfg: dicts (see :class:`BaseDenseHead` for the test keys).
        init_cfg: default ``Normal(std=0.01)`` on convs, ``conv_cls`` bias from prior probability 0.01.
    """

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int = 256, stacked_convs: int = 4,
                 strides: Sequence[int] = (4, 8, 16, 32, 64), dcn_on_last_conv: bool = False,
                 conv_bias: bool | str = 'auto',
                 loss_cls: Mapping[str, Any] = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                                    loss_weight=1.0),
                 loss_bbox: Mapping[str, Any] = dict(type='IoULoss', loss_weight=1.0),
                 bbox_coder: Mapping[str, Any] = dict(type='DistancePointBBoxCoder'),
                 conv_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None,
                 train_cfg: Mapping[str, Any] | None = None, test_cfg: Mapping[str, Any] | None = None,
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01,
                                      override=dict(type='Normal', name='conv_cls', std=0.01, bias_prob=0.01))
                 ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be >= 1, got {num_classes}')
        if dcn_on_last_conv:
            raise NotImplementedError(f'{type(self).__name__}: dcn_on_last_conv is not supported by kiln')
        if conv_bias != 'auto' and not isinstance(conv_bias, bool):
            raise ValueError(f"conv_bias must be 'auto' or a bool, got {conv_bias!r}")
        self.num_classes = num_classes
        self.use_sigmoid_cls = bool(loss_cls.get('use_sigmoid', False))
        self.cls_out_channels = num_classes if self.use_sigmoid_cls else num_classes + 1
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.stacked_convs = stacked_convs
        self.strides = tuple(strides)
        self.dcn_on_last_conv = dcn_on_last_conv
        self.conv_bias = conv_bias
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.bbox_coder = MODELS.build(bbox_coder)
        self.prior_generator = MlvlPointGenerator(self.strides)
        self.num_base_priors = self.prior_generator.num_base_priors[0]
        self._init_layers()

    def _init_layers(self) -> None:
        self.cls_convs = self._tower()
        self.reg_convs = self._tower()
        self.conv_cls = nn.Conv2d(self.feat_channels, self.cls_out_channels, 3, padding=1)
        self.conv_reg = nn.Conv2d(self.feat_channels, 4, 3, padding=1)

    def _tower(self) -> nn.ModuleList:
        return nn.ModuleList(
            ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, stride=1,
                       padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, bias=self.conv_bias)
            for i in range(self.stacked_convs))

    def forward(self, x: Sequence[Tensor]) -> tuple[list[Tensor], ...]:
        """Per-level outputs; see :meth:`forward_single`."""
        if len(x) != len(self.strides):
            raise ValueError(f'{type(self).__name__} has {len(self.strides)} strides {self.strides} but got '
                             f'{len(x)} feature levels')
        return multi_apply(self.forward_single, x)[:2]

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One level (N, in_channels, H, W) -> (cls_score (N, C, H, W), bbox_pred (N, 4, H, W), cls_feat,
        reg_feat)."""
        cls_feat, reg_feat = self.forward_towers(x)
        return self.conv_cls(cls_feat), self.conv_reg(reg_feat), cls_feat, reg_feat
