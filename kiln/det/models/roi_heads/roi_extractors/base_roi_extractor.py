"""Base RoI feature extractor (MMDetection ``BaseRoIExtractor``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from kiln.model import BaseModule


class RoIAlignLayer(nn.Module):
    """MMCV ``RoIAlign`` config (``output_size``, ``spatial_scale``, ``sampling_ratio``, ``pool_mode``, ``aligned``)
    on ``torchvision.ops.roi_align``.

    ``aligned=True`` (MMCV's default) shifts box coordinates by -0.5 pixel before sampling, the same convention
    in both libraries; ``sampling_ratio=0`` samples ``ceil(roi_size / output_size)`` points per bin.

    ``forward(input (N, C, H, W), rois (K, 5) (batch_index, x1, y1, x2, y2) in input-image pixels)`` -> float
    (K, C, out_h, out_w).

    Raises:
        NotImplementedError: ``pool_mode='max'``.
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float, sampling_ratio: int = 0,
                 pool_mode: str = 'avg', aligned: bool = True, use_torchvision: bool = False) -> None:
        super().__init__()
        if pool_mode != 'avg':
            raise NotImplementedError(f"RoIAlign pool_mode={pool_mode!r} is not supported (only 'avg')")
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        from torchvision.ops import roi_align
        return roi_align(input, rois.to(input.dtype), self.output_size, self.spatial_scale, self.sampling_ratio,
                         self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, aligned={self.aligned}')


_ROI_LAYERS = {'RoIAlign': RoIAlignLayer}


class BaseRoIExtractor(BaseModule):
    """Pools a fixed-size feature for each RoI from multi-level features.

    Args:
        roi_layer: ``dict(type='RoIAlign', output_size=7, sampling_ratio=0)`` (``spatial_scale`` is set per level
            to ``1 / stride``).
        out_channels: channels of the input features (and of the pooled features).
        featmap_strides: stride of each input level, pixels; the extractor uses that many levels.
        init_cfg: initialisation config (the extractor has no parameters of its own).

    Raises:
        KeyError: an unknown ``roi_layer`` type.
    """

    def __init__(self, roi_layer: Mapping[str, Any], out_channels: int, featmap_strides: Sequence[int],
                 init_cfg: Any = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.roi_layers = self.build_roi_layers(roi_layer, featmap_strides)
        self.out_channels = out_channels
        self.featmap_strides = list(featmap_strides)

    @property
    def num_inputs(self) -> int:
        """Number of feature levels used."""
        return len(self.featmap_strides)

    @staticmethod
    def build_roi_layers(layer_cfg: Mapping[str, Any], featmap_strides: Sequence[int]) -> nn.ModuleList:
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type', 'RoIAlign')
        if layer_type not in _ROI_LAYERS:
            raise KeyError(f'roi_layer type {layer_type!r} is not supported; available: {sorted(_ROI_LAYERS)}')
        return nn.ModuleList(_ROI_LAYERS[layer_type](spatial_scale=1 / s, **cfg) for s in featmap_strides)

    def roi_rescale(self, rois: Tensor, scale_factor: float) -> Tensor:
        """Scale each RoI's width and height by ``scale_factor`` about its centre."""
        cx = (rois[:, 1] + rois[:, 3]) * 0.5
        cy = (rois[:, 2] + rois[:, 4]) * 0.5
        w = (rois[:, 3] - rois[:, 1]) * scale_factor
        h = (rois[:, 4] - rois[:, 2]) * scale_factor
        return torch.stack([rois[:, 0], cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5], dim=-1)

    def forward(self, feats: Sequence[Tensor], rois: Tensor, roi_scale_factor: float | None = None) -> Tensor:
        raise NotImplementedError
