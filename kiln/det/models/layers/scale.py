"""Learnable scalar multiplier (MMCV ``Scale``), used per FPN level by FCOS."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Scale(nn.Module):
    """Multiply the input by a learnable 0-dim float32 parameter named ``scale`` (FCOS, Tian et al. 2019).

    Args:
        scale: initial value.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale
