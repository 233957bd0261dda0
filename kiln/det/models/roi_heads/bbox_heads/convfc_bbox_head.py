"""RoI box heads with shared and per-branch convs / fully connected layers (MMDetection ``ConvFCBBoxHead``,
``Shared2FCBBoxHead`` = Faster R-CNN's "2fc" head, ``Shared4Conv1FCBBoxHead``)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from kiln.registry import MODELS

from ...layers import ConvModule
from .bbox_head import BBoxHead, _build_linear


@MODELS.register_module()
class ConvFCBBoxHead(BBoxHead):
    """``shared convs -> shared fcs -> (cls convs -> cls fcs -> fc_cls, reg convs -> reg fcs -> fc_reg)``.

    Args:
        num_shared_convs, num_shared_fcs, num_cls_convs, num_cls_fcs, num_reg_convs, num_reg_fcs: branch depths
            (state-dict names ``shared_convs.i``, ``shared_fcs.i``, ``cls_convs.i``, ``cls_fcs.i``,
            ``reg_convs.i``, ``reg_fcs.i``).
        conv_out_channels: channels of the 3x3 convs (``ConvModule`` with ``conv_cfg`` / ``norm_cfg``).
        fc_out_channels: width of the fully connected layers (ReLU after each).
        init_cfg: default: :class:`BBoxHead`'s plus Xavier-uniform on the fc branches.
        **kwargs: :class:`BBoxHead` arguments.

    Raises:
        ValueError: no layer at all, or cls/reg convs after shared fcs.
    """

    def __init__(self, num_shared_convs: int = 0, num_shared_fcs: int = 0, num_cls_convs: int = 0,
                 num_cls_fcs: int = 0, num_reg_convs: int = 0, num_reg_fcs: int = 0, conv_out_channels: int = 256,
                 fc_out_channels: int = 1024, conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] | None = None, init_cfg: Any = None, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(*args, init_cfg=init_cfg, **kwargs)
        total = num_shared_convs + num_shared_fcs + num_cls_convs + num_cls_fcs + num_reg_convs + num_reg_fcs
        if total <= 0:
            raise ValueError(f'{type(self).__name__} needs at least one conv or fc layer')
        if (num_cls_convs > 0 or num_reg_convs > 0) and num_shared_fcs != 0:
            raise ValueError(f'{type(self).__name__}: cls/reg convs need num_shared_fcs == 0')
        if not self.with_cls and (num_cls_convs or num_cls_fcs):
            raise ValueError(f'{type(self).__name__}: cls branch layers given with with_cls=False')
        if not self.with_reg and (num_reg_convs or num_reg_fcs):
            raise ValueError(f'{type(self).__name__}: reg branch layers given with with_reg=False')
        self.num_shared_convs = num_shared_convs
        self.num_shared_fcs = num_shared_fcs
        self.num_cls_convs = num_cls_convs
        self.num_cls_fcs = num_cls_fcs
        self.num_reg_convs = num_reg_convs
        self.num_reg_fcs = num_reg_fcs
        self.conv_out_channels = conv_out_channels
        self.fc_out_channels = fc_out_channels
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg

        self.shared_convs, self.shared_fcs, last_dim = self._add_conv_fc_branch(
            num_shared_convs, num_shared_fcs, self.in_channels, True)
        self.shared_out_channels = last_dim
        self.cls_convs, self.cls_fcs, cls_dim = self._add_conv_fc_branch(num_cls_convs, num_cls_fcs, last_dim)
        self.reg_convs, self.reg_fcs, reg_dim = self._add_conv_fc_branch(num_reg_convs, num_reg_fcs, last_dim)
        if num_shared_fcs == 0 and not self.with_avg_pool:
            if num_cls_fcs == 0:
                cls_dim *= self.roi_feat_area
            if num_reg_fcs == 0:
                reg_dim *= self.roi_feat_area
        self.relu = nn.ReLU(inplace=True)
        if self.with_cls:
            self.fc_cls = _build_linear(self.cls_predictor_cfg, cls_dim, self.cls_channels)
        if self.with_reg:
            self.fc_reg = _build_linear(self.reg_predictor_cfg, reg_dim, self.out_dim_reg)
        if init_cfg is None:
            self.init_cfg += [dict(type='Xavier', distribution='uniform',
                                   override=[dict(name='shared_fcs'), dict(name='cls_fcs'), dict(name='reg_fcs')])]

    def _add_conv_fc_branch(self, num_convs: int, num_fcs: int, in_channels: int,
                            is_shared: bool = False) -> tuple[nn.ModuleList, nn.ModuleList, int]:
        last_dim = in_channels
        convs = nn.ModuleList()
        for i in range(num_convs):
            convs.append(ConvModule(last_dim if i == 0 else self.conv_out_channels, self.conv_out_channels, 3,
                                    padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg))
        if num_convs > 0:
            last_dim = self.conv_out_channels
        fcs = nn.ModuleList()
        if num_fcs > 0:
            if (is_shared or self.num_shared_fcs == 0) and not self.with_avg_pool:
                last_dim *= self.roi_feat_area
            for i in range(num_fcs):
                fcs.append(nn.Linear(last_dim if i == 0 else self.fc_out_channels, self.fc_out_channels))
            last_dim = self.fc_out_channels
        return convs, fcs, last_dim

    def _branch(self, x: Tensor, convs: nn.ModuleList, fcs: nn.ModuleList) -> Tensor:
        for conv in convs:
            x = conv(x)
        if x.dim() > 2:
            if self.with_avg_pool:
                x = self.avg_pool(x)
            x = x.flatten(1)
        for fc in fcs:
            x = self.relu(fc(x))
        return x

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """RoI features (K, in_channels, h, w) -> (cls_score (K, C + 1), bbox_pred (K, 4 C) or (K, 4))."""
        for conv in self.shared_convs:
            x = conv(x)
        if self.num_shared_fcs > 0:
            if self.with_avg_pool:
                x = self.avg_pool(x)
            x = x.flatten(1)
            for fc in self.shared_fcs:
                x = self.relu(fc(x))
        cls_score = self.fc_cls(self._branch(x, self.cls_convs, self.cls_fcs)) if self.with_cls else None
        bbox_pred = self.fc_reg(self._branch(x, self.reg_convs, self.reg_fcs)) if self.with_reg else None
        return cls_score, bbox_pred


@MODELS.register_module()
class Shared2FCBBoxHead(ConvFCBBoxHead):
    """Two shared fully connected layers (``shared_fcs.0``, ``shared_fcs.1``), then ``fc_cls`` / ``fc_reg``:
    the Faster R-CNN FPN box head."""

    def __init__(self, fc_out_channels: int = 1024, *args: Any, **kwargs: Any) -> None:
        super().__init__(0, 2, 0, 0, 0, 0, *args, fc_out_channels=fc_out_channels, **kwargs)


@MODELS.register_module()
class Shared4Conv1FCBBoxHead(ConvFCBBoxHead):
    """Four shared 3x3 convs and one shared fully connected layer, then ``fc_cls`` / ``fc_reg``."""

    def __init__(self, fc_out_channels: int = 1024, *args: Any, **kwargs: Any) -> None:
        super().__init__(4, 1, 0, 0, 0, 0, *args, fc_out_channels=fc_out_channels, **kwargs)
