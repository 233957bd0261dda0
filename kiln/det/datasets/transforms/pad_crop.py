"""``Pad`` and ``RandomCrop``: image, boxes and instance masks together.

Reference: MMCV 2.x ``mmcv.transforms.Pad`` and MMDetection 3.x ``mmdet.datasets.transforms.Pad`` /
``RandomCrop`` (behaviour), re-implemented with numpy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS


@TRANSFORMS.register_module()
class Pad(BaseTransform):
    """Pad the image (and ``gt_masks``) at the bottom / right.

    The target size is ``size`` (w, h), or the image padded to a square (``pad_to_square``), then rounded up to
    a multiple of ``size_divisor`` when given (MMCV's order).

    Reads: ``img``, ``gt_masks`` (optional). Writes: ``img``, ``img_shape`` and ``pad_shape`` (h, w of the padded
    image), ``pad_fixed_size``, ``pad_size_divisor``, ``gt_masks`` (padded with ``pad_val['masks']``, default 0).
    Boxes do not move.

    Args:
        size: fixed (w, h) to pad to.
        size_divisor: pad each side up to a multiple of this.
        pad_to_square: pad to a square of the longer side.
        pad_val: a number for the image, or ``dict(img=..., masks=..., seg=...)``.
        padding_mode: only ``'constant'``.

    Raises:
        ValueError: none or both of ``size`` / ``size_divisor`` with ``pad_to_square=False`` (MMCV's rule), an
            image larger than ``size``, or another ``padding_mode``.
    """

    def __init__(self, size: Sequence[int] | None = None, size_divisor: int | None = None,
                 pad_to_square: bool = False, pad_val: float | dict = dict(img=0, seg=255),
                 padding_mode: str = 'constant') -> None:
        if padding_mode != 'constant':
            raise ValueError(f"Pad: only padding_mode='constant' is supported, got {padding_mode!r}")
        if pad_to_square:
            if size is not None:
                raise ValueError('Pad: give either size or pad_to_square, not both')
        elif (size is None) == (size_divisor is None):
            raise ValueError('Pad: give exactly one of size=(w, h) and size_divisor')
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.size_divisor = size_divisor
        self.pad_to_square = pad_to_square
        self.pad_val = dict(img=pad_val) if isinstance(pad_val, (int, float)) else dict(pad_val)
        self.padding_mode = padding_mode

    def _target(self, h: int, w: int) -> tuple[int, int]:
        size = self.size
        if self.pad_to_square:
            side = max(h, w)
            size = (side, side)
        if self.size_divisor is not None:
            size_w, size_h = size if size is not None else (w, h)
            d = self.size_divisor
            size = (int(math.ceil(size_w / d)) * d, int(math.ceil(size_h / d)) * d)
        return int(size[1]), int(size[0])

    def transform(self, results: dict) -> dict:
        """Pad ``results`` in place (see the class docstring for the keys)."""
        if 'img' not in results:
            raise KeyError(f'Pad: results has no "img" (keys: {sorted(results)})')
        img = results['img']
        h, w = img.shape[:2]
        out_h, out_w = self._target(h, w)
        if out_h < h or out_w < w:
            raise ValueError(f'Pad: the image of {results.get("img_path", "?")} is {h}x{w} (h x w), larger than '
                             f'the pad target {out_h}x{out_w}')
        padded = np.full((out_h, out_w) + img.shape[2:], self.pad_val.get('img', 0), dtype=img.dtype)
        padded[:h, :w] = img
        results['img'] = padded
        results['img_shape'] = (out_h, out_w)
        results['pad_shape'] = (out_h, out_w)
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].pad((out_h, out_w), pad_val=self.pad_val.get('masks', 0))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, size_divisor={self.size_divisor}, '
                f'pad_to_square={self.pad_to_square}, pad_val={self.pad_val})')


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random window of the image; boxes, labels, ignore flags and masks follow.

    Crop size (h, w) from ``crop_size`` = (w, h) and ``crop_type`` (MMDetection semantics, numpy's global RNG):

    * ``'absolute'``: ``(min(h_crop, h), min(w_crop, w))``;
    * ``'absolute_range'``: each edge an integer drawn in ``[crop_size[0], crop_size[1]]`` (capped by the image);
    * ``'relative'``: ``(h * h_ratio, w * w_ratio)`` rounded;
    * ``'relative_range'``: each ratio drawn in ``[crop_size[i], 1]``.

    The window's top-left corner is uniform over the valid positions. Boxes are shifted (and with
    ``bbox_clip_border`` clipped) to the window; instances whose box leaves the window are dropped with their
    label, ignore flag and mask. With ``recompute_bbox`` the boxes are recomputed from the cropped masks.

    Reads: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks`` (all optional but
    ``img``). Writes: the same keys and ``img_shape``. Returns ``None`` (the dataset draws another sample) when
    no box survives and ``allow_negative_crop`` is False.

    Raises:
        ValueError: an unknown ``crop_type`` or sizes outside its range.
    """

    def __init__(self, crop_size: Sequence[float], crop_type: str = 'absolute', allow_negative_crop: bool = False,
                 recompute_bbox: bool = False, bbox_clip_border: bool = True) -> None:
        types = ('relative_range', 'relative', 'absolute', 'absolute_range')
        if crop_type not in types:
            raise ValueError(f'RandomCrop: crop_type must be one of {types}, got {crop_type!r}')
        if len(crop_size) != 2:
            raise ValueError(f'RandomCrop: crop_size must be a pair, got {crop_size!r}')
        if crop_type in ('absolute', 'absolute_range'):
            if crop_size[0] <= 0 or crop_size[1] <= 0:
                raise ValueError(f'RandomCrop: crop_size must be positive, got {crop_size!r}')
            if crop_type == 'absolute_range' and crop_size[0] > crop_size[1]:
                raise ValueError(f'RandomCrop: absolute_range needs crop_size[0] <= crop_size[1], got {crop_size!r}')
        elif not (0 < crop_size[0] <= 1 and 0 < crop_size[1] <= 1):
            raise ValueError(f'RandomCrop: {crop_type} crop_size must be in (0, 1], got {crop_size!r}')
        self.crop_size = tuple(crop_size)
        self.crop_type = crop_type
        self.allow_negative_crop = allow_negative_crop
        self.recompute_bbox = recompute_bbox
        self.bbox_clip_border = bbox_clip_border

    def _crop_hw(self, h: int, w: int) -> tuple[int, int]:
        if self.crop_type == 'absolute':
            return min(int(self.crop_size[1]), h), min(int(self.crop_size[0]), w)
        if self.crop_type == 'absolute_range':
            lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
            crop_h = np.random.randint(min(h, lo), min(h, hi) + 1)
            crop_w = np.random.randint(min(w, lo), min(w, hi) + 1)
            return int(crop_h), int(crop_w)
        if self.crop_type == 'relative':
            ratio_w, ratio_h = self.crop_size
        else:
            low = np.asarray(self.crop_size, dtype=np.float32)
            ratio_h, ratio_w = low + np.random.rand(2) * (1 - low)
        return int(h * ratio_h + 0.5), int(w * ratio_w + 0.5)

    def transform(self, results: dict) -> dict | None:
        """Crop ``results`` in place, or return ``None`` for a crop without boxes (see the class docstring)."""
        if 'img' not in results:
            raise KeyError(f'RandomCrop: results has no "img" (keys: {sorted(results)})')
        img = results['img']
        h, w = img.shape[:2]
        crop_h, crop_w = self._crop_hw(h, w)
        y1 = int(np.random.randint(0, max(h - crop_h, 0) + 1))
        x1 = int(np.random.randint(0, max(w - crop_w, 0) + 1))
        y2, x2 = y1 + crop_h, x1 + crop_w
        img = img[y1:y2, x1:x2]
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        new_h, new_w = img.shape[:2]
        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'], dtype=np.float32) - np.array([x1, y1, x1, y1], np.float32)
            if self.bbox_clip_border:
                boxes[:, 0::2] = boxes[:, 0::2].clip(0, new_w)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0, new_h)
            valid = (boxes[:, 0] < new_w) & (boxes[:, 1] < new_h) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            if not valid.any() and not self.allow_negative_crop:
                return None
            results['gt_bboxes'] = boxes[valid]
            for key in ('gt_ignore_flags', 'gt_bboxes_labels'):
                if results.get(key) is not None:
                    results[key] = np.asarray(results[key])[valid]
            if results.get('gt_masks') is not None:
                masks = results['gt_masks'][np.flatnonzero(valid)]
                results['gt_masks'] = masks.crop(np.array([x1, y1, x2, y2]))
                if self.recompute_bbox:
                    results['gt_bboxes'] = results['gt_masks'].get_bboxes().numpy()
        elif results.get('gt_masks') is not None:  # masks without boxes still follow the image
            results['gt_masks'] = results['gt_masks'].crop(np.array([x1, y1, x2, y2]))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.crop_size}, crop_type={self.crop_type!r}, '
                f'allow_negative_crop={self.allow_negative_crop}, recompute_bbox={self.recompute_bbox}, '
                f'bbox_clip_border={self.bbox_clip_border})')
