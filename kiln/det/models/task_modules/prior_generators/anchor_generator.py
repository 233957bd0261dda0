"""Multi-level anchor boxes (Faster R-CNN / RetinaNet); MMDetection ``AnchorGenerator`` semantics."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS

from .point_generator import _pair, grid_valid_flags


@TASK_UTILS.register_module()
@MODELS.register_module()
class AnchorGenerator:
    """Anchors of several scales and aspect ratios at every cell of every level.

    Args:
        strides: stride of each level (int or ``(w, h)``), pixels.
        ratios: aspect ratios h / w.
        scales: anchor scales relative to ``base_sizes``; or give ``octave_base_scale`` + ``scales_per_octave``
            (RetinaNet: scales ``octave_base_scale * 2**(i / scales_per_octave)``).
        base_sizes: base anchor size of each level (default: the level's stride).
        scale_major: order the base anchors scale-major (all ratios of scale 0 first ... as MMDetection:
            ``ws = w * w_ratios[:, None] * scales[None, :]``).
        centers: explicit anchor centres per level (default: ``center_offset * stride``).
        center_offset: centre offset in units of the base size.

    Anchors are float xyxy pixels; per level they are ordered cell-major (row-major cells), then base anchor,
    matching a head output reshaped as ``permute(0, 2, 3, 1).reshape(-1, 4)``.

    Raises:
        ValueError: both/neither ``scales`` and ``octave_base_scale`` given, or sizes of per-level lists differ.
    """

    def __init__(self, strides: Sequence[int | Sequence[int]], ratios: Sequence[float],
                 scales: Sequence[float] | None = None, base_sizes: Sequence[int] | None = None,
                 scale_major: bool = True, octave_base_scale: float | None = None,
                 scales_per_octave: int | None = None, centers: Sequence[Sequence[float]] | None = None,
                 center_offset: float = 0.0) -> None:
        if center_offset != 0 and centers is not None:
            raise ValueError('AnchorGenerator: give centers or center_offset, not both')
        if not 0 <= center_offset <= 1:
            raise ValueError(f'AnchorGenerator center_offset must be in [0, 1], got {center_offset}')
        self.strides = [_pair(s) for s in strides]
        self.base_sizes = list(base_sizes) if base_sizes is not None else [min(s) for s in self.strides]
        if len(self.base_sizes) != len(self.strides):
            raise ValueError(f'AnchorGenerator: {len(self.base_sizes)} base_sizes for {len(self.strides)} strides')
        if centers is not None and len(centers) != len(self.strides):
            raise ValueError(f'AnchorGenerator: {len(centers)} centers for {len(self.strides)} strides')
        if (scales is None) == (octave_base_scale is None or scales_per_octave is None):
            raise ValueError('AnchorGenerator: give either scales or octave_base_scale + scales_per_octave')
        if scales is not None:
            self.scales = torch.tensor(scales, dtype=torch.float32)
        else:
            self.scales = torch.tensor([2 ** (i / scales_per_octave) for i in range(scales_per_octave)],
                                       dtype=torch.float32) * octave_base_scale
        self.octave_base_scale = octave_base_scale
        self.scales_per_octave = scales_per_octave
        self.ratios = torch.tensor(ratios, dtype=torch.float32)
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.base_anchors = [self._base_anchors(size, None if centers is None else centers[i])
                             for i, size in enumerate(self.base_sizes)]

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Anchors per cell on each level (``len(ratios) * len(scales)``)."""
        return [a.size(0) for a in self.base_anchors]

    def _base_anchors(self, base_size: float, center: Sequence[float] | None) -> Tensor:
        w = h = float(base_size)
        x_c, y_c = (self.center_offset * w, self.center_offset * h) if center is None else center
        h_ratios = torch.sqrt(self.ratios)
        w_ratios = 1 / h_ratios
        if self.scale_major:
            ws = (w * w_ratios[:, None] * self.scales[None, :]).reshape(-1)
            hs = (h * h_ratios[:, None] * self.scales[None, :]).reshape(-1)
        else:
            ws = (w * self.scales[:, None] * w_ratios[None, :]).reshape(-1)
            hs = (h * self.scales[:, None] * h_ratios[None, :]).reshape(-1)
        return torch.stack([x_c - 0.5 * ws, y_c - 0.5 * hs, x_c + 0.5 * ws, y_c + 0.5 * hs], dim=-1)

    def grid_priors(self, featmap_sizes: Sequence[Sequence[int]], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = 'cpu') -> list[Tensor]:
        """Anchors of all levels: list of (H_l * W_l * A_l, 4) xyxy pixels.

        Raises:
            ValueError: the number of feature maps differs from the number of strides.
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'AnchorGenerator has {self.num_levels} strides but got {len(featmap_sizes)} '
                             f'feature-map sizes')
        return [self.single_level_grid_priors(featmap_sizes[i], i, dtype, device) for i in range(self.num_levels)]

    def single_level_grid_priors(self, featmap_size: Sequence[int], level_idx: int,
                                 dtype: torch.dtype = torch.float32, device: torch.device | str = 'cpu') -> Tensor:
        """Anchors of one level: (H * W * A, 4) xyxy pixels."""
        base = self.base_anchors[level_idx].to(device=device, dtype=dtype)
        feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
        stride_w, stride_h = self.strides[level_idx]
        shift_x = (torch.arange(feat_w, device=device) * stride_w).to(dtype)
        shift_y = (torch.arange(feat_h, device=device) * stride_h).to(dtype)
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)

    def valid_flags(self, featmap_sizes: Sequence[Sequence[int]], pad_shape: Sequence[int],
                    device: torch.device | str = 'cpu') -> list[Tensor]:
        """Bool (H_l * W_l * A_l,) per level: True for anchors whose cell lies inside ``pad_shape`` (h, w)."""
        flags = []
        for i, size in enumerate(featmap_sizes):
            cell = grid_valid_flags(size, self.strides[i], pad_shape, device)
            flags.append(cell[:, None].expand(-1, self.num_base_priors[i]).reshape(-1))
        return flags

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(strides={self.strides}, ratios={self.ratios.tolist()}, '
                f'scales={self.scales.tolist()}, base_sizes={self.base_sizes})')
