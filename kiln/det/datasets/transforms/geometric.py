"""Geometric augmentations: ``RandomChoiceResize``, ``Expand``, ``MinIoURandomCrop``, ``RandomAffine``,
``RandomShift``.

Reference: MMCV 2.x ``mmcv.transforms.RandomChoiceResize`` and MMDetection 3.3 ``mmdet.datasets.transforms``
(``Expand``, ``MinIoURandomCrop``, ``RandomAffine``, ``RandomShift``): same names, arguments, random draws (numpy's
global generator, in the same order) and box semantics, re-implemented with numpy / OpenCV. Where MMDetection
leaves instance masks out (``RandomAffine`` raises, ``RandomShift`` ignores them) kiln moves ``gt_masks`` with
the image.

Boxes are float32 (N, 4) xyxy pixel arrays; "clip" means x to [0, w] and y to [0, h]; a box is "inside" an
(h, w) image when ``x1 < w and y1 < h and x2 > 0 and y2 > 0`` (MMDetection's ``is_inside``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

from .resize import _pair

INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks')


# ---------------------------------------------------------------------------------------------- helpers
def get_boxes(results: dict, name: str) -> np.ndarray:
    """``results['gt_bboxes']`` as float32 (N, 4) (a (0, 4) array when absent)."""
    boxes = results.get('gt_bboxes')
    if boxes is None:
        return np.zeros((0, 4), dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'{name}: gt_bboxes of {results.get("img_path", "?")} must be (N, 4) xyxy, '
                         f'got shape {boxes.shape}')
    return boxes


def clip_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Clip xyxy boxes to an (h, w) image in place and return them."""
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def is_inside(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N,) bool: the box overlaps the (h, w) image (MMDetection's ``HorizontalBoxes.is_inside``)."""
    return (boxes[:, 0] < w) & (boxes[:, 1] < h) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def select_instances(results: dict, keep: np.ndarray) -> dict:
    """Keep instances ``keep`` ((N,) bool) of every per-instance key (boxes, labels, ignore flags, masks)."""
    keep = np.asarray(keep, dtype=bool)
    for key in INSTANCE_KEYS:
        value = results.get(key)
        if value is None:
            continue
        if key == 'gt_masks':
            results[key] = value[np.flatnonzero(keep)]
        else:
            results[key] = np.asarray(value)[keep]
    return results


def project_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map the 4 corners of each xyxy box through the 3x3 homography and take their bounding box
    (MMDetection's ``HorizontalBoxes.project_``)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1),
                        np.stack([x2, y2], 1)], 1).reshape(-1, 2).astype(np.float64)
    pts = np.concatenate([corners, np.ones((len(corners), 1))], 1) @ np.asarray(matrix, np.float64).T
    pts = (pts[:, :2] / pts[:, 2:3]).reshape(-1, 4, 2)
    return np.concatenate([pts.min(1), pts.max(1)], 1).astype(np.float32)


def warp_masks(masks: Any, matrix: np.ndarray, out_shape: tuple[int, int]) -> Any:
    """Warp instance masks with the 3x3 ``matrix`` onto an (h, w) canvas.

    ``BitmapMasks``: ``cv2.warpPerspective`` with nearest-neighbour sampling and a 0 border, per mask.
    ``PolygonMasks``: the vertices are mapped and clipped to the canvas.
    """
    import cv2

    from ...structures.mask import BitmapMasks, PolygonMasks
    h, w = int(out_shape[0]), int(out_shape[1])
    matrix = np.asarray(matrix, dtype=np.float64)
    if isinstance(masks, BitmapMasks):
        if len(masks) == 0:
            return BitmapMasks(np.zeros((0, h, w), dtype=masks.masks.dtype), h, w)
        src = masks.masks.astype(np.uint8) if masks.masks.dtype == bool else masks.masks
        out = np.stack([cv2.warpPerspective(np.ascontiguousarray(m), matrix, (w, h), flags=cv2.INTER_NEAREST,
                                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) for m in src])
        return BitmapMasks(out.astype(masks.masks.dtype, copy=False), h, w)
    if isinstance(masks, PolygonMasks):
        polys = []
        for obj in masks.masks:
            parts = []
            for p in obj:
                xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
                q = np.concatenate([xy, np.ones((len(xy), 1))], 1) @ matrix.T
                q = q[:, :2] / q[:, 2:3]
                parts.append(np.clip(q, 0, [w, h]).reshape(-1))
            polys.append(parts)
        return PolygonMasks(polys, h, w)
    raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(masks).__name__}')


# ---------------------------------------------------------------------------------------------- resize
@TRANSFORMS.register_module()
class RandomChoiceResize(BaseTransform):
    """Resize to one of ``scales``, chosen uniformly (MMCV's ``RandomChoiceResize``).

    The index is drawn with ``np.random.randint(len(scales))``; the chosen scale is given to a resize transform
    built from ``resize_type`` (default :class:`Resize`, so ``keep_ratio`` and the box / mask handling are
    :class:`Resize`'s).

    Reads / writes: as :class:`Resize`, plus ``scale_idx`` (int, the chosen index).

    Args:
        scales: a list of (w, h) pairs or ints (one scale may be given alone).
        resize_type: registered resize transform (default ``'Resize'``).
        **resize_kwargs: its other arguments, e.g. ``keep_ratio=True``.

    Raises:
        ValueError: an empty ``scales`` or an item that is neither an int nor a pair.
    """

    def __init__(self, scales: Sequence, resize_type: str = 'Resize', **resize_kwargs: Any) -> None:
        items = list(scales) if isinstance(scales, list) else [scales]
        if not items:
            raise ValueError('RandomChoiceResize: scales is empty')
        try:
            self.scales = [tuple(int(v) for v in _pair(s, 'scales')) for s in items]
        except TypeError:
            raise ValueError(f'RandomChoiceResize: scales must be (w, h) pairs or ints, got {scales!r}') from None
        self.resize_type = resize_type
        self.resize = TRANSFORMS.build(dict(type=resize_type, scale=self.scales[0], **resize_kwargs))

    def transform(self, results: dict) -> dict:
        """Pick a scale and resize ``results`` (see the class docstring)."""
        idx = int(np.random.randint(len(self.scales)))
        self.resize.scale = self.scales[idx]
        results = self.resize(results)
        results['scale_idx'] = idx
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scales={self.scales}, resize={self.resize!r})'


# ---------------------------------------------------------------------------------------------- expand
@TRANSFORMS.register_module()
class Expand(BaseTransform):
    """Paste the image at a random place of a larger canvas filled with ``mean`` (SSD's zoom-out).

    With probability ``prob`` (``np.random.uniform(0, 1) <= prob``): ratio ``r ~ U(ratio_range)``, canvas
    ``(int(h * r), int(w * r))``, top-left corner ``left = int(U(0, w * r - w))``, ``top = int(U(0, h * r - h))``
    (numpy draws, MMDetection's order). Boxes move by (left, top); masks are expanded the same way
    (``masks.expand``), so a box and its mask's extent move together.

    Reads: ``img`` (H, W, C), ``gt_bboxes``, ``gt_masks`` (optional). Writes: ``img``, ``img_shape``,
    ``gt_bboxes``, ``gt_masks``.

    Args:
        mean: canvas colour in RGB order when ``to_rgb`` (it is reversed for the BGR image), else in image order.
        to_rgb: see ``mean``.
        ratio_range: (min, max) canvas / image size ratio.
        seg_ignore_label: fill of ``gt_seg_map`` (semantic maps are not supported by kiln's loaders).
        prob: probability of expanding.

    Raises:
        ValueError: ``ratio_range`` min below 1 or above max.

    Source: SSD (Liu et al., 2016); MMDetection 3.3 ``Expand``.
    """

    def __init__(self, mean: Sequence[float] = (0, 0, 0), to_rgb: bool = True,
                 ratio_range: Sequence[float] = (1, 4), seg_ignore_label: int | None = None,
                 prob: float = 0.5) -> None:
        if len(ratio_range) != 2 or not 1 <= ratio_range[0] <= ratio_range[1]:
            raise ValueError(f'Expand: ratio_range must be (min, max) with 1 <= min <= max, got {ratio_range!r}')
        self.to_rgb = to_rgb
        self.ratio_range = tuple(ratio_range)
        self.mean = tuple(mean)[::-1] if to_rgb else tuple(mean)
        self.min_ratio, self.max_ratio = ratio_range
        self.seg_ignore_label = seg_ignore_label
        self.prob = prob

    def transform(self, results: dict) -> dict:
        """Expand ``results`` in place (see the class docstring)."""
        if np.random.uniform(0, 1) > self.prob:
            return results
        if 'img' not in results:
            raise KeyError(f'Expand: results has no "img" (keys: {sorted(results)})')
        img = results['img']
        h, w = img.shape[:2]
        ratio = np.random.uniform(self.min_ratio, self.max_ratio)
        out_h, out_w = int(h * ratio), int(w * ratio)
        left = int(np.random.uniform(0, w * ratio - w))
        top = int(np.random.uniform(0, h * ratio - h))
        fill = self.mean if img.ndim == 3 and len(self.mean) == img.shape[2] else self.mean[0]
        canvas = np.empty((out_h, out_w) + img.shape[2:], dtype=img.dtype)
        canvas[...] = fill
        canvas[top:top + h, left:left + w] = img
        results['img'] = canvas
        results['img_shape'] = canvas.shape[:2]
        if results.get('gt_bboxes') is not None:
            results['gt_bboxes'] = get_boxes(results, 'Expand') + np.array([left, top, left, top], np.float32)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].expand(out_h, out_w, top, left)
        if results.get('gt_seg_map') is not None:
            seg = results['gt_seg_map']
            out = np.full((out_h, out_w), self.seg_ignore_label, dtype=seg.dtype)
            out[top:top + h, left:left + w] = seg
            results['gt_seg_map'] = out
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mean={self.mean}, to_rgb={self.to_rgb}, ratio_range={self.ratio_range}, '
                f'seg_ignore_label={self.seg_ignore_label}, prob={self.prob})')


# ---------------------------------------------------------------------------------------------- min-IoU crop
@TRANSFORMS.register_module()
class MinIoURandomCrop(BaseTransform):
    """SSD's crop: a random patch whose IoU with every box is at least a randomly chosen threshold.

    Loop (MMDetection semantics, numpy draws): pick ``mode`` uniformly from ``(1, *min_ious, 0)``; ``1`` returns
    the input unchanged; otherwise try 50 patches with ``new_w ~ U(min_crop_size * w, w)``,
    ``new_h ~ U(min_crop_size * h, h)`` and aspect ``new_h / new_w`` in [0.5, 2]. A patch is accepted when the
    IoU of the patch with every box is >= ``mode`` and at least one box centre lies strictly inside it; the
    instances whose centre is inside are kept (boxes shifted and, with ``bbox_clip_border``, clipped to the
    patch; labels, ignore flags and cropped masks follow). An image without boxes accepts the first patch of
    valid aspect. After 50 failures a new ``mode`` is drawn.

    Reads: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks`` (optional).
    Writes: the same keys and ``img_shape``.

    Args:
        min_ious: IoU thresholds to choose from.
        min_crop_size: minimum patch side as a fraction of the image side.
        bbox_clip_border: clip boxes to the patch.

    Raises:
        KeyError: ``img`` or ``gt_bboxes`` missing.

    Source: SSD (Liu et al., 2016); MMDetection 3.3 ``MinIoURandomCrop`` (including its draw of the patch
    corner with ``np.random.uniform(w - new_w)``, i.e. between ``w - new_w`` and 1).
    """

    def __init__(self, min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size: float = 0.3,
                 bbox_clip_border: bool = True) -> None:
        self.min_ious = tuple(min_ious)
        self.sample_mode = (1, *self.min_ious, 0)
        self.min_crop_size = min_crop_size
        self.bbox_clip_border = bbox_clip_border

    @staticmethod
    def _centers_inside(boxes: np.ndarray, patch: np.ndarray) -> np.ndarray:
        cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
        cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
        return (cx > patch[0]) & (cy > patch[1]) & (cx < patch[2]) & (cy < patch[3])

    def transform(self, results: dict) -> dict:
        """Crop ``results`` in place (see the class docstring)."""
        import torch
        from torchvision.ops import box_iou
        for key in ('img', 'gt_bboxes'):
            if key not in results:
                raise KeyError(f'MinIoURandomCrop: results has no {key!r} (keys: {sorted(results)})')
        img = results['img']
        boxes = get_boxes(results, 'MinIoURandomCrop')
        h, w = img.shape[:2]
        while True:
            mode = self.sample_mode[np.random.randint(len(self.sample_mode))]
            if mode == 1:
                return results
            for _ in range(50):
                new_w = np.random.uniform(self.min_crop_size * w, w)
                new_h = np.random.uniform(self.min_crop_size * h, h)
                if new_h / new_w < 0.5 or new_h / new_w > 2:
                    continue
                left = np.random.uniform(w - new_w)
                top = np.random.uniform(h - new_h)
                patch = np.array((int(left), int(top), int(left + new_w), int(top + new_h)))
                if patch[2] == patch[0] or patch[3] == patch[1]:
                    continue
                if len(boxes):
                    ious = box_iou(torch.from_numpy(patch[None].astype(np.float32)),
                                   torch.from_numpy(boxes)).numpy().reshape(-1)
                    if ious.min() < mode:
                        continue
                    inside = self._centers_inside(boxes, patch)
                    if not inside.any():
                        continue
                    select_instances(results, inside)
                    kept = boxes[inside] - np.array([patch[0], patch[1], patch[0], patch[1]], np.float32)
                    if self.bbox_clip_border:
                        clip_boxes(kept, patch[3] - patch[1], patch[2] - patch[0])
                    results['gt_bboxes'] = kept
                    if results.get('gt_masks') is not None:
                        results['gt_masks'] = results['gt_masks'].crop(patch)
                results['img'] = img[patch[1]:patch[3], patch[0]:patch[2]]
                results['img_shape'] = results['img'].shape[:2]
                if results.get('gt_seg_map') is not None:
                    results['gt_seg_map'] = results['gt_seg_map'][patch[1]:patch[3], patch[0]:patch[2]]
                return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_ious={self.min_ious}, min_crop_size={self.min_crop_size}, '
                f'bbox_clip_border={self.bbox_clip_border})')


# ---------------------------------------------------------------------------------------------- affine
@TRANSFORMS.register_module()
class RandomAffine(BaseTransform):
    """Random rotation, scaling, shear and translation in one ``cv2.warpPerspective`` (YOLOX's affine).

    Matrix (numpy draws in this order, MMDetection 3.3): rotation ``U(-max_rotate_degree, max_rotate_degree)``
    degrees, scale ``U(*scaling_ratio_range)``, shear x / y ``U(-max_shear_degree, max_shear_degree)`` degrees,
    translation ``U(-max_translate_ratio, max_translate_ratio)`` times the output width / height;
    ``M = T @ Sh @ R @ S`` (all about the origin, the top-left corner). The output is
    ``(h + 2 * border[1], w + 2 * border[0])`` (``border=(-320, -320)`` turns a 1280x1280 mosaic into 640x640),
    filled with ``border_val`` outside the source.

    Boxes: their 4 corners are mapped and the bounding box taken, then clipped (``bbox_clip_border``); boxes
    no longer inside the output are dropped with their labels, ignore flags and masks. Masks (kiln extension;
    MMDetection raises ``NotImplementedError``) are warped with the same matrix (nearest-neighbour for
    ``BitmapMasks``, vertex mapping for ``PolygonMasks``): without rotation and shear a box and its mask's extent
    move identically.

    Reads: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks`` (optional).
    Writes: the same keys, ``img_shape``, ``homography_matrix`` (3x3 float32, composed with an earlier one).

    Raises:
        ValueError: ``max_translate_ratio`` outside [0, 1] or a bad ``scaling_ratio_range``.

    Source: YOLOX (Ge et al., 2021); MMDetection 3.3 ``RandomAffine``.
    """

    def __init__(self, max_rotate_degree: float = 10.0, max_translate_ratio: float = 0.1,
                 scaling_ratio_range: tuple[float, float] = (0.5, 1.5), max_shear_degree: float = 2.0,
                 border: tuple[int, int] = (0, 0), border_val: tuple[int, int, int] = (114, 114, 114),
                 bbox_clip_border: bool = True) -> None:
        if not 0 <= max_translate_ratio <= 1:
            raise ValueError(f'RandomAffine: max_translate_ratio must be in [0, 1], got {max_translate_ratio}')
        if not 0 < scaling_ratio_range[0] <= scaling_ratio_range[1]:
            raise ValueError(f'RandomAffine: scaling_ratio_range must be (lo, hi) with 0 < lo <= hi, '
                             f'got {scaling_ratio_range!r}')
        self.max_rotate_degree = max_rotate_degree
        self.max_translate_ratio = max_translate_ratio
        self.scaling_ratio_range = tuple(scaling_ratio_range)
        self.max_shear_degree = max_shear_degree
        self.border = tuple(border)
        self.border_val = tuple(border_val)
        self.bbox_clip_border = bbox_clip_border

    def _random_matrix(self, height: int, width: int) -> np.ndarray:
        rot = math.radians(np.random.uniform(-self.max_rotate_degree, self.max_rotate_degree))
        rotation = np.array([[np.cos(rot), -np.sin(rot), 0.], [np.sin(rot), np.cos(rot), 0.], [0., 0., 1.]],
                            dtype=np.float32)
        s = np.random.uniform(self.scaling_ratio_range[0], self.scaling_ratio_range[1])
        scaling = np.array([[s, 0., 0.], [0., s, 0.], [0., 0., 1.]], dtype=np.float32)
        sx = math.radians(np.random.uniform(-self.max_shear_degree, self.max_shear_degree))
        sy = math.radians(np.random.uniform(-self.max_shear_degree, self.max_shear_degree))
        shear = np.array([[1, np.tan(sx), 0.], [np.tan(sy), 1, 0.], [0., 0., 1.]], dtype=np.float32)
        tx = np.random.uniform(-self.max_translate_ratio, self.max_translate_ratio) * width
        ty = np.random.uniform(-self.max_translate_ratio, self.max_translate_ratio) * height
        translation = np.array([[1, 0., tx], [0., 1, ty], [0., 0., 1.]], dtype=np.float32)
        return translation @ shear @ rotation @ scaling

    def transform(self, results: dict) -> dict:
        """Warp ``results`` in place (see the class docstring)."""
        import cv2
        if 'img' not in results:
            raise KeyError(f'RandomAffine: results has no "img" (keys: {sorted(results)})')
        img = results['img']
        height = img.shape[0] + self.border[1] * 2
        width = img.shape[1] + self.border[0] * 2
        matrix = self._random_matrix(height, width)
        results['img'] = cv2.warpPerspective(img, matrix, dsize=(width, height), borderValue=self.border_val)
        results['img_shape'] = results['img'].shape[:2]
        old = results.get('homography_matrix')
        results['homography_matrix'] = matrix if old is None else matrix @ old
        boxes = get_boxes(results, 'RandomAffine')
        if len(boxes):
            boxes = project_boxes(boxes, matrix)
            if self.bbox_clip_border:
                clip_boxes(boxes, height, width)
            keep = is_inside(boxes, height, width)
            results['gt_bboxes'] = boxes
            if results.get('gt_masks') is not None:
                results['gt_masks'] = warp_masks(results['gt_masks'], matrix, (height, width))
            select_instances(results, keep)
        elif results.get('gt_masks') is not None:
            results['gt_masks'] = warp_masks(results['gt_masks'], matrix, (height, width))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_rotate_degree={self.max_rotate_degree}, '
                f'max_translate_ratio={self.max_translate_ratio}, scaling_ratio_range={self.scaling_ratio_range}, '
                f'max_shear_degree={self.max_shear_degree}, border={self.border}, border_val={self.border_val}, '
                f'bbox_clip_border={self.bbox_clip_border})')


# ---------------------------------------------------------------------------------------------- shift
@TRANSFORMS.register_module()
class RandomShift(BaseTransform):
    """Shift the image and its instances by a random whole number of pixels (the canvas size is kept).

    With probability ``prob`` (``np.random.uniform(0, 1) < prob``) draw ``dx, dy = np.random.randint(-max_shift_px,
    max_shift_px)`` (numpy: the upper bound is excluded, as in MMDetection). Boxes move by (dx, dy) and are
    clipped to the image; instances whose clipped box is not wider and taller than ``filter_thr_px`` are dropped
    (labels, ignore flags and masks too). When no instance would survive, nothing is shifted. The uncovered
    strip is filled with 0. Masks (kiln extension; MMDetection leaves them) shift by the same (dx, dy).

    Reads: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks`` (optional).
    Writes: the same keys.

    Args:
        prob: probability of shifting, in [0, 1].
        max_shift_px: largest shift in pixels (>= 0).
        filter_thr_px: minimum width and height (exclusive) of a kept box, in pixels.

    Raises:
        ValueError: ``prob`` outside [0, 1] or a negative ``max_shift_px``.
    """

    def __init__(self, prob: float = 0.5, max_shift_px: int = 32, filter_thr_px: int = 1) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomShift: prob must be in [0, 1], got {prob}')
        if max_shift_px < 0:
            raise ValueError(f'RandomShift: max_shift_px must be >= 0, got {max_shift_px}')
        self.prob = prob
        self.max_shift_px = max_shift_px
        self.filter_thr_px = int(filter_thr_px)

    def transform(self, results: dict) -> dict:
        """Shift ``results`` in place (see the class docstring)."""
        if np.random.uniform(0, 1) >= self.prob:
            return results
        img = results['img']
        h, w = img.shape[:2]
        dx = int(np.random.randint(-self.max_shift_px, self.max_shift_px))
        dy = int(np.random.randint(-self.max_shift_px, self.max_shift_px))
        boxes = clip_boxes(get_boxes(results, 'RandomShift') + np.array([dx, dy, dx, dy], np.float32), h, w)
        keep = ((boxes[:, 2] - boxes[:, 0]) > self.filter_thr_px) & ((boxes[:, 3] - boxes[:, 1]) > self.filter_thr_px)
        if not keep.any():
            return results
        results['gt_bboxes'] = boxes
        if results.get('gt_masks') is not None:
            masks = results['gt_masks']
            if dx:
                masks = masks.translate((h, w), dx, 'horizontal')
            if dy:
                masks = masks.translate((h, w), dy, 'vertical')
            results['gt_masks'] = masks
        select_instances(results, keep)
        out = np.zeros_like(img)
        nh, nw = h - abs(dy), w - abs(dx)
        out[max(0, dy):max(0, dy) + nh, max(0, dx):max(0, dx) + nw] = \
            img[max(0, -dy):max(0, -dy) + nh, max(0, -dx):max(0, -dx) + nw]
        results['img'] = out
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, max_shift_px={self.max_shift_px}, '
                f'filter_thr_px={self.filter_thr_px})')
