"""Point <-> (left, top, right, bottom) distance box coder (FCOS); MMDetection ``DistancePointBBoxCoder``."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS


def clip_boxes(boxes: Tensor, max_shape: Sequence[int]) -> Tensor:
    """Clamp xyxy boxes (..., 4) to an image of ``max_shape`` (h, w) pixels (x in [0, w], y in [0, h])."""
    h, w = float(max_shape[0]), float(max_shape[1])
    x = boxes[..., 0::2].clamp(0, w)
    y = boxes[..., 1::2].clamp(0, h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


@TASK_UTILS.register_module()
@MODELS.register_module()
class DistancePointBBoxCoder:
    """Encode xyxy boxes as distances from points to the four sides, and back.

    Args:
        clip_border: clip decoded boxes to ``max_shape``.
    """

    encode_size = 4

    def __init__(self, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    def encode(self, points: Tensor, gt_bboxes: Tensor, max_dis: float | None = None, eps: float = 0.1) -> Tensor:
        """points float (N, 2) x, y pixels; gt_bboxes float (N, 4) xyxy -> float (N, 4) (left, top, right, bottom)
        pixels, clamped to ``[0, max_dis - eps]`` when ``max_dis`` is given."""
        if points.shape[:-1] != gt_bboxes.shape[:-1]:
            raise ValueError(f'DistancePointBBoxCoder.encode: {tuple(points.shape)} points vs '
                             f'{tuple(gt_bboxes.shape)} boxes')
        x, y = points[..., 0], points[..., 1]
        dist = torch.stack([x - gt_bboxes[..., 0], y - gt_bboxes[..., 1], gt_bboxes[..., 2] - x,
                            gt_bboxes[..., 3] - y], dim=-1)
        if max_dis is not None:
            dist = dist.clamp(min=0, max=max_dis - eps)
        return dist

    def decode(self, points: Tensor, pred_bboxes: Tensor, max_shape: Sequence[int] | None = None) -> Tensor:
        """points float (..., 2); distances float (..., 4) (left, top, right, bottom) -> xyxy (..., 4) pixels,
        clipped to ``max_shape`` (h, w) when ``clip_border``."""
        if points.shape[:-1] != pred_bboxes.shape[:-1]:
            raise ValueError(f'DistancePointBBoxCoder.decode: {tuple(points.shape)} points vs '
                             f'{tuple(pred_bboxes.shape)} distances')
        x, y = points[..., 0], points[..., 1]
        boxes = torch.stack([x - pred_bboxes[..., 0], y - pred_bboxes[..., 1], x + pred_bboxes[..., 2],
                             y + pred_bboxes[..., 3]], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_boxes(boxes, max_shape)
        return boxes
