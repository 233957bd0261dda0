"""Mask R-CNN mask targets: each positive RoI's ground-truth mask cropped to the RoI and resized to ``mask_size``.

Semantics of MMDetection 3.3.0 ``mmdet/structures/mask/mask_target.py`` (kiln's own code).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _mask_size(cfg: Any) -> tuple[int, int]:
    size = _cfg_get(cfg, 'mask_size')
    if size is None:
        raise KeyError('mask_target: the rcnn train config has no "mask_size" (e.g. train_cfg.rcnn.mask_size=28)')
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'mask_target: mask_size must be an int or (h, w), got {size!r}')
    return size


def mask_target(pos_proposals_list: Sequence[Tensor], pos_assigned_gt_inds_list: Sequence[Tensor],
                gt_masks_list: Sequence[Any], cfg: Any) -> Tensor:
    """Mask targets of the positive proposals of several images, concatenated in image order.

    Args:
        pos_proposals_list: per image, float (P_i, 4) xyxy pixels (positive RoIs).
        pos_assigned_gt_inds_list: per image, int64 (P_i,) index of each RoI's ground-truth instance.
        gt_masks_list: per image, ground-truth masks (``BitmapMasks`` / ``PolygonMasks``: ``height``, ``width``,
            ``crop_and_resize``).
        cfg: the rcnn train config: ``mask_size`` (int or (h, w)); ``soft_mask_target=True`` keeps the
            resampled values instead of thresholding them at 0.5.

    Returns:
        float32 (sum P_i, mask_h, mask_w) on the proposals' device (binary 0/1 unless ``soft_mask_target``).

    Raises:
        ValueError: the three lists differ in length.
    """
    if not len(pos_proposals_list) == len(pos_assigned_gt_inds_list) == len(gt_masks_list):
        raise ValueError(f'mask_target: {len(pos_proposals_list)} proposal tensors, '
                         f'{len(pos_assigned_gt_inds_list)} index tensors and {len(gt_masks_list)} mask sets; '
                         'expected one of each per image')
    targets = [mask_target_single(p, i, m, cfg)
               for p, i, m in zip(pos_proposals_list, pos_assigned_gt_inds_list, gt_masks_list)]
    if not targets:
        return torch.zeros((0,) + _mask_size(cfg))
    return torch.cat(targets)


def mask_target_single(pos_proposals: Tensor, pos_assigned_gt_inds: Tensor, gt_masks: Any, cfg: Any) -> Tensor:
    """Mask targets of one image's positive proposals.

    The proposals are clipped to the mask canvas (``[0, width] x [0, height]``), then each assigned
    ground-truth mask is cropped to its proposal and resampled to ``mask_size`` with
    ``gt_masks.crop_and_resize`` (RoIAlign, aligned, for bitmaps; polygon rescaling + rasterisation for polygons)
    and thresholded at 0.5 (unless ``soft_mask_target``).

    Args:
        pos_proposals: float (P, 4) xyxy pixels.
        pos_assigned_gt_inds: int64 (P,) indices into ``gt_masks``.
        gt_masks: ``BitmapMasks`` / ``PolygonMasks`` of the image.
        cfg: see :func:`mask_target`.

    Returns:
        float32 (P, mask_h, mask_w) on ``pos_proposals.device``.

    Raises:
        IndexError: an assigned index is outside ``gt_masks``.
    """
    device = pos_proposals.device
    mask_size = _mask_size(cfg)
    binarize = not _cfg_get(cfg, 'soft_mask_target', False)
    num_pos = pos_proposals.size(0)
    if num_pos == 0:
        return pos_proposals.new_zeros((0,) + mask_size)
    proposals_np = pos_proposals.detach().cpu().numpy().copy()
    max_h, max_w = gt_masks.height, gt_masks.width
    proposals_np[:, [0, 2]] = np.clip(proposals_np[:, [0, 2]], 0, max_w)
    proposals_np[:, [1, 3]] = np.clip(proposals_np[:, [1, 3]], 0, max_h)
    inds = pos_assigned_gt_inds.detach().cpu().numpy()
    if inds.size and (inds.min() < 0 or inds.max() >= len(gt_masks)):
        raise IndexError(f'mask_target: assigned gt indices span [{inds.min()}, {inds.max()}] but there are '
                         f'{len(gt_masks)} ground-truth masks')
    targets = gt_masks.crop_and_resize(proposals_np, mask_size, device=device, inds=inds,
                                       binarize=binarize).to_ndarray()
    return torch.from_numpy(np.ascontiguousarray(targets)).float().to(device)
