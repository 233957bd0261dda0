"""RetinaNet head (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017); MMDetection ``RetinaHead``."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from kiln.registry import MODELS

from ..layers import ConvModule
from .anchor_head import AnchorHead


@MODELS.register_module()
class RetinaHead(AnchorHead):
    """Two conv towers (``cls_convs``, ``reg_convs``) and 3x3 predictors ``retina_cls`` / ``retina_reg``.

    Args:
        num_classes, in_channels: see :class:`AnchorHead`.
        stacked_convs: tower depth.
        conv_cfg, norm_cfg: tower :class:`ConvModule` configs.
        anchor_generator: default 9 anchors per cell (3 octave scales x ratios 0.5/1/2), strides 8..128.
        init_cfg: ``Normal(std=0.01)`` on convs, ``retina_cls`` bias from prior probability 0.01.
        **kwargs: :class:`AnchorHead` arguments (``feat_channels``, ``bbox_coder``, ``loss_cls``, ``loss_bbox``,
            ``train_cfg``, ``test_cfg`` ...). Use ``loss_cls=dict(type='FocalLoss', ...)`` as RetinaNet does.

    Outputs per level: cls_score (N, A * C, H, W) logits, bbox_pred (N, A * 4, H, W) deltas.
    """

    def __init__(self, num_classes: int, in_channels: int, stacked_convs: int = 4,
                 conv_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None,
                 anchor_generator: Mapping[str, Any] = dict(type='AnchorGenerator', octave_base_scale=4,
                                                            scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                                            strides=[8, 16, 32, 64, 128]),
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01,
                                      override=dict(type='Normal', name='retina_cls', std=0.01, bias_prob=0.01)),
                 **kwargs: Any) -> None:
        self.stacked_convs = stacked_convs
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        super().__init__(num_classes, in_channels, anchor_generator=anchor_generator, init_cfg=init_cfg, **kwargs)

    def _init_layers(self) -> None:
        self.relu = nn.ReLU(inplace=True)

        def tower() -> nn.ModuleList:
            return nn.ModuleList(
                ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, stride=1,
                           padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg)
                for i in range(self.stacked_convs))

        self.cls_convs = tower()
        self.reg_convs = tower()
        self.retina_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 3, padding=1)
        self.retina_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * 4, 3, padding=1)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One level (N, in_channels, H, W) -> (cls_score (N, A * C, H, W), bbox_pred (N, A * 4, H, W))."""
        cls_feat, reg_feat = self.forward_towers(x)
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat)
