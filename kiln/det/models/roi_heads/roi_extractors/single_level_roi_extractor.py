"""``SingleRoIExtractor``: pool each RoI from one FPN level chosen by its size (Lin et al., "Feature Pyramid
Networks", CVPR 2017, eq. 1); MMDetection ``SingleRoIExtractor``."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS

from .base_roi_extractor import BaseRoIExtractor


@MODELS.register_module()
class SingleRoIExtractor(BaseRoIExtractor):
    """Assign each RoI to level ``floor(log2(sqrt(w * h) / finest_scale + 1e-6))`` clamped to the available
    levels (scale < 112: level 0, < 224: 1, < 448: 2, else 3 with the default ``finest_scale=56``), then RoIAlign
    it on that level.

    Args:
        roi_layer, out_channels, featmap_strides, init_cfg: see :class:`BaseRoIExtractor`.
        finest_scale: RoI scale (pixels) mapped to level 0.

    ``forward(feats, rois, roi_scale_factor=None)``: ``feats`` per level (N, C, H_l, W_l) (only the first
    ``len(featmap_strides)`` are used), ``rois`` float (K, 5) ``(batch_index, x1, y1, x2, y2)`` input-image
    pixels -> float (K, C, out_h, out_w).
    """

    def __init__(self, roi_layer: Mapping[str, Any], out_channels: int, featmap_strides: Sequence[int],
                 finest_scale: int = 56, init_cfg: Any = None) -> None:
        super().__init__(roi_layer, out_channels, featmap_strides, init_cfg=init_cfg)
        self.finest_scale = finest_scale

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """int64 (K,) level of each RoI."""
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return levels.clamp(min=0, max=num_levels - 1).long()

    def forward(self, feats: Sequence[Tensor], rois: Tensor, roi_scale_factor: float | None = None) -> Tensor:
        feats = feats[:self.num_inputs]
        out_size = self.roi_layers[0].output_size
        num_levels = len(feats)
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError(f'SingleRoIExtractor: rois must be (K, 5) (batch_index, x1, y1, x2, y2), got '
                             f'{tuple(rois.shape)}')
        if num_levels == 1:
            return self.roi_layers[0](feats[0], rois)
        roi_feats = feats[0].new_zeros(rois.size(0), self.out_channels, *out_size)
        target_lvls = self.map_roi_levels(rois, num_levels)
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        for i in range(num_levels):
            inds = (target_lvls == i).nonzero().squeeze(1)
            if inds.numel() > 0:
                roi_feats[inds] = self.roi_layers[i](feats[i], rois[inds])
            else:
                # keep every level in the autograd graph (distributed training expects all outputs used)
                roi_feats = roi_feats + feats[i].sum() * 0.
        return roi_feats
