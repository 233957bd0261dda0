"""(dx, dy, dw, dh) box-delta coder (R-CNN, Girshick et al. 2014); MMDetection ``DeltaXYWHBBoxCoder``."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS, TASK_UTILS


@TASK_UTILS.register_module()
@MODELS.register_module()
class DeltaXYWHBBoxCoder:
    """Encode a target box relative to a prior box as normalised centre shift and log size ratio.

    ``dx = (gx - px) / pw``, ``dy = (gy - py) / ph``, ``dw = log(gw / pw)``, ``dh = log(gh / ph)``, then
    ``(d - target_means) / target_stds``. Centres are ``(x1 + x2) / 2`` and sizes ``x2 - x1`` (xyxy pixels, no
    +1), computed in the same operation order as MMDetection's ``bbox2delta`` / ``delta2bbox`` so results agree
    to the last bit.

    Args:
        target_means, target_stds: normalisation of the 4 deltas.
        clip_border: clip decoded boxes to ``max_shape``.
        add_ctr_clamp: clamp the decoded centre shift to ``ctr_clamp`` pixels (and only the upper end of
            ``dw, dh``).
        ctr_clamp: see ``add_ctr_clamp``.
    """

    encode_size = 4

    def __init__(self, target_means: Sequence[float] = (0., 0., 0., 0.),
                 target_stds: Sequence[float] = (1., 1., 1., 1.), clip_border: bool = True,
                 add_ctr_clamp: bool = False, ctr_clamp: int = 32) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ValueError(f'DeltaXYWHBBoxCoder: target_means/target_stds need 4 values, got {target_means} '
                             f'and {target_stds}')
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, bboxes: Tensor, gt_bboxes: Tensor) -> Tensor:
        """priors float (N, 4) xyxy, targets float (N, 4) xyxy -> float32 (N, 4) normalised deltas.

        Raises:
            ValueError: the two inputs have different shapes.
        """
        if bboxes.shape != gt_bboxes.shape:
            raise ValueError(f'DeltaXYWHBBoxCoder.encode: priors {tuple(bboxes.shape)} vs targets '
                             f'{tuple(gt_bboxes.shape)}')
        p, g = bboxes.float(), gt_bboxes.float()
        px, py = (p[..., 0] + p[..., 2]) * 0.5, (p[..., 1] + p[..., 3]) * 0.5
        pw, ph = p[..., 2] - p[..., 0], p[..., 3] - p[..., 1]
        gx, gy = (g[..., 0] + g[..., 2]) * 0.5, (g[..., 1] + g[..., 3]) * 0.5
        gw, gh = g[..., 2] - g[..., 0], g[..., 3] - g[..., 1]
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, bboxes: Tensor, pred_bboxes: Tensor, max_shape: Sequence[int] | None = None,
               wh_ratio_clip: float = 16 / 1000) -> Tensor:
        """Apply deltas to priors.

        Args:
            bboxes: priors float (N, 4) xyxy pixels.
            pred_bboxes: deltas float (N, 4) or (N, 4 * k) (k boxes per prior, e.g. one per class).
            max_shape: (h, w) to clip to when ``clip_border``.
            wh_ratio_clip: ``|dw|, |dh|`` are clamped to ``|log(wh_ratio_clip)|``.

        Returns:
            float (N, 4 * k) xyxy pixels (same shape as ``pred_bboxes``).

        Raises:
            ValueError: priors and deltas disagree in the number of rows, or deltas are not a multiple of 4 wide.
        """
        if bboxes.dim() != 2 or bboxes.size(-1) != 4 or pred_bboxes.dim() != 2 or \
                pred_bboxes.size(0) != bboxes.size(0) or pred_bboxes.size(1) % 4 != 0:
            raise ValueError(f'DeltaXYWHBBoxCoder.decode: expected priors (N, 4) and deltas (N, 4k), got '
                             f'{tuple(bboxes.shape)} and {tuple(pred_bboxes.shape)}')
        num, k = pred_bboxes.size(0), pred_bboxes.size(1) // 4
        if num == 0:
            return pred_bboxes
        deltas = pred_bboxes.reshape(-1, 4)
        deltas = deltas * deltas.new_tensor(self.stds).view(1, -1) + deltas.new_tensor(self.means).view(1, -1)
        priors = bboxes.repeat(1, k).reshape(-1, 4) if k > 1 else bboxes
        pxy = (priors[:, :2] + priors[:, 2:]) * 0.5
        pwh = priors[:, 2:] - priors[:, :2]
        dxy_wh = pwh * deltas[:, :2]
        dwh = deltas[:, 2:]
        max_ratio = abs(math.log(wh_ratio_clip))
        if self.add_ctr_clamp:
            dxy_wh = dxy_wh.clamp(min=-self.ctr_clamp, max=self.ctr_clamp)
            dwh = dwh.clamp(max=max_ratio)
        else:
            dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border and max_shape is not None:
            h, w = float(max_shape[0]), float(max_shape[1])
            x = boxes[:, 0::2].clamp(min=0, max=w)
            y = boxes[:, 1::2].clamp(min=0, max=h)
            boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=-1)
        return boxes.reshape(num, -1)
