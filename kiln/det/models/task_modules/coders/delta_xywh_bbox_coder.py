"""(dx, dy, dw, dh) box-delta coder (R-CNN, Girshick et al. 2014); MMDetection ``DeltaXYWHBBoxCoder``."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS

from .distance_point_bbox_coder import clip_boxes


@TASK_UTILS.register_module()
@MODELS.register_module()
class DeltaXYWHBBoxCoder:
    """Encode a target box relative to a prior box as normalised centre shift and log size ratio.

    ``dx = (gx - px) / pw``, ``dy = (gy - py) / ph``, ``dw = log(gw / pw)``, ``dh = log(gh / ph)``, then
    ``(d - target_means) / target_stds`` (centres/sizes from xyxy pixels, no +1).

    Args:
        target_means, target_stds: normalisation of the 4 deltas.
        clip_border: clip decoded boxes to ``max_shape``.
        add_ctr_clamp: clamp the decoded centre shift to ``ctr_clamp`` pixels.
        ctr_clamp: see ``add_ctr_clamp``.
    """

    encode_size = 4

    def __init__(self, target_means: Sequence[float] = (0., 0., 0., 0.),
                 target_stds: Sequence[float] = (1., 1., 1., 1.), clip_border: bool = True,
                 add_ctr_clamp: bool = False, ctr_clamp: int = 32) -> None:
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, bboxes: Tensor, gt_bboxes: Tensor) -> Tensor:
        """priors float (N, 4) xyxy, targets float (N, 4) xyxy -> float (N, 4) normalised deltas."""
        if bboxes.shape != gt_bboxes.shape:
            raise ValueError(f'DeltaXYWHBBoxCoder.encode: priors {tuple(bboxes.shape)} vs targets '
                             f'{tuple(gt_bboxes.shape)}')
        p, g = bboxes.float(), gt_bboxes.float()
        pw, ph = p[..., 2] - p[..., 0], p[..., 3] - p[..., 1]
        px, py = p[..., 0] + 0.5 * pw, p[..., 1] + 0.5 * ph
        gw, gh = g[..., 2] - g[..., 0], g[..., 3] - g[..., 1]
        gx, gy = g[..., 0] + 0.5 * gw, g[..., 1] + 0.5 * gh
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, bboxes: Tensor, pred_bboxes: Tensor, max_shape: Sequence[int] | None = None,
               wh_ratio_clip: float = 16 / 1000) -> Tensor:
        """priors float (N, 4) xyxy, deltas float (N, 4) -> boxes float (N, 4) xyxy pixels (clipped to
        ``max_shape`` (h, w) when ``clip_border``); ``|dw|, |dh|`` are clamped to ``|log(wh_ratio_clip)|``."""
        if bboxes.shape != pred_bboxes.shape:
            raise ValueError(f'DeltaXYWHBBoxCoder.decode: priors {tuple(bboxes.shape)} vs deltas '
                             f'{tuple(pred_bboxes.shape)}')
        deltas = pred_bboxes * pred_bboxes.new_tensor(self.stds) + pred_bboxes.new_tensor(self.means)
        pwh = bboxes[..., 2:] - bboxes[..., :2]
        pxy = bboxes[..., :2] + 0.5 * pwh
        dxy_wh = pwh * deltas[..., :2]
        max_ratio = abs(math.log(wh_ratio_clip))
        dwh = deltas[..., 2:]
        if self.add_ctr_clamp:
            dxy_wh = dxy_wh.clamp(-self.ctr_clamp, self.ctr_clamp)
            dwh = dwh.clamp(max=max_ratio)
        else:
            dwh = dwh.clamp(-max_ratio, max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - 0.5 * gwh, gxy + 0.5 * gwh], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_boxes(boxes, max_shape)
        return boxes
