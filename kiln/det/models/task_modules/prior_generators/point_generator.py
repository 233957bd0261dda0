"""Grid point priors for anchor-free heads (FCOS); MMDetection ``MlvlPointGenerator`` semantics."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS


def _pair(s: int | float | Sequence[int | float]) -> tuple:
    return tuple(s) if isinstance(s, (tuple, list)) else (s, s)


@TASK_UTILS.register_module()
@MODELS.register_module()
class MlvlPointGenerator:
    """One point per feature-map cell on every pyramid level.

    Args:
        strides: stride of each level in pixels, an int or a ``(stride_w, stride_h)`` pair per level.
        offset: position of the point inside its cell, in units of the stride (0.5 = cell centre).

    The point of cell (row i, col j) on level l is ``((j + offset) * stride_w, (i + offset) * stride_h)`` pixels
    in the padded input image; points are ordered row-major (matching ``feat.permute(0, 2, 3, 1).reshape``).
    """

    def __init__(self, strides: Sequence[int | Sequence[int]], offset: float = 0.5) -> None:
        self.strides = [_pair(s) for s in strides]
        self.offset = offset

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Priors per cell on each level (always 1)."""
        return [1] * self.num_levels

    def grid_priors(self, featmap_sizes: Sequence[Sequence[int]], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = 'cpu', with_stride: bool = False) -> list[Tensor]:
        """Points of all levels.

        Args:
            featmap_sizes: ``(H_l, W_l)`` of each level.
            with_stride: append ``(stride_w, stride_h)`` columns.

        Returns:
            list of (H_l * W_l, 2) (or (H_l * W_l, 4) with strides) tensors: x, y in pixels.

        Raises:
            ValueError: the number of feature maps differs from the number of strides.
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'MlvlPointGenerator has {self.num_levels} strides but got {len(featmap_sizes)} '
                             f'feature-map sizes')
        return [self.single_level_grid_priors(featmap_sizes[i], i, dtype, device, with_stride)
                for i in range(self.num_levels)]

    def single_level_grid_priors(self, featmap_size: Sequence[int], level_idx: int,
                                 dtype: torch.dtype = torch.float32, device: torch.device | str = 'cpu',
                                 with_stride: bool = False) -> Tensor:
        """Points of one level: (H * W, 2) (or (H * W, 4) with strides) x, y pixels."""
        feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
        stride_w, stride_h = self.strides[level_idx]
        shift_x = ((torch.arange(feat_w, device=device) + self.offset) * stride_w).to(dtype)
        shift_y = ((torch.arange(feat_h, device=device) + self.offset) * stride_h).to(dtype)
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
        cols = [xx.reshape(-1), yy.reshape(-1)]
        if with_stride:
            cols += [xx.new_full((xx.numel(),), stride_w), xx.new_full((xx.numel(),), stride_h)]
        return torch.stack(cols, dim=-1)

    def valid_flags(self, featmap_sizes: Sequence[Sequence[int]], pad_shape: Sequence[int],
                    device: torch.device | str = 'cpu') -> list[Tensor]:
        """Bool (H_l * W_l,) per level: True where the cell lies inside ``pad_shape`` (h, w) of the image."""
        return [grid_valid_flags(size, self.strides[i], pad_shape, device) for i, size in enumerate(featmap_sizes)]


def grid_valid_flags(featmap_size: Sequence[int], stride: Sequence[int], pad_shape: Sequence[int],
                     device: torch.device | str = 'cpu') -> Tensor:
    """Bool (H * W,) in row-major cell order: True where the cell of a (H, W) feature map with ``stride``
    (w, h) in pixels starts inside ``pad_shape`` (h, w), i.e. not in padding added beyond the batch's images."""
    feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
    stride_w, stride_h = stride
    valid_h = min(math.ceil(pad_shape[0] / stride_h), feat_h)
    valid_w = min(math.ceil(pad_shape[1] / stride_w), feat_w)
    vy = torch.arange(feat_h, device=device) < valid_h
    vx = torch.arange(feat_w, device=device) < valid_w
    return (vy[:, None] & vx[None, :]).reshape(-1)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(strides={self.strides}, offset={self.offset})'
