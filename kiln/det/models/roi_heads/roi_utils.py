"""RoI tensor helpers (MMDetection ``bbox2roi`` / ``roi2bbox``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def bbox2roi(bbox_list: Sequence[Tensor]) -> Tensor:
    """Per-image boxes float (K_i, 4) xyxy -> RoIs float (sum K_i, 5) ``(batch_index, x1, y1, x2, y2)``, the
    layout ``torchvision.ops.roi_align`` takes.

    Raises:
        ValueError: a box tensor is not (K, 4).
    """
    rois = []
    for img_id, bboxes in enumerate(bbox_list):
        if bboxes.dim() != 2 or bboxes.size(-1) != 4:
            raise ValueError(f'bbox2roi: boxes of image {img_id} must be (K, 4), got {tuple(bboxes.shape)}')
        rois.append(torch.cat([bboxes.new_full((bboxes.size(0), 1), img_id), bboxes], dim=-1))
    return torch.cat(rois, 0)


def roi2bbox(rois: Tensor) -> list[Tensor]:
    """RoIs float (K, 5) -> per-image boxes (K_i, 4), for batch indices 0..max."""
    if rois.numel() == 0:
        return []
    img_ids = rois[:, 0].long()
    return [rois[img_ids == i, 1:] for i in range(int(img_ids.max()) + 1)]
