"""Instance-mask structures: :class:`BitmapMasks` (dense ``(N, H, W)`` arrays) and :class:`PolygonMasks`
(COCO polygons).

Both hold the masks of the N instances of one image and offer the geometric operations a detection pipeline
needs (resize, flip, pad, crop, translate, rotate, shear, crop-and-resize to RoIs) with the same names, argument
orders and results as MMDetection 3.x ``mmdet.structures.mask.BitmapMasks`` / ``PolygonMasks`` (behaviour
re-implemented here). Pixel work uses OpenCV (``cv2.resize`` / ``cv2.warpAffine``), pycocotools (polygon
rasterisation) and ``torchvision.ops.roi_align`` (RoI crops); there are no per-pixel Python loops.

Conventions:

* shapes are ``(h, w)`` tuples (``out_shape``), boxes are xyxy pixels;
* polygons are flat ``[x0, y0, x1, y1, ...]`` float arrays in pixel coordinates (COCO convention: pixel
  ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``);
* every operation returns a new object and leaves its input unchanged.
"""
from __future__ import annotations

import itertools
from abc import ABCMeta, abstractmethod
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ['BaseInstanceMasks', 'BitmapMasks', 'PolygonMasks', 'polygon_to_bitmap', 'bitmap_to_polygon',
           'mask2bbox']

_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')
_INTERP = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def _cv2():
    import cv2  # imported on use: heavy, and only needed for pixel work
    return cv2


def _cv2_interp(interpolation: str) -> int:
    if interpolation not in _INTERP:
        raise ValueError(f'interpolation must be one of {_INTERP}, got {interpolation!r}')
    cv2 = _cv2()
    return {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
            'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4}[interpolation]


def _shape2(out_shape: Any, name: str = 'out_shape') -> tuple[int, int]:
    try:
        h, w = (int(v) for v in out_shape)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be an (h, w) pair of ints, got {out_shape!r}') from None
    if h < 0 or w < 0:
        raise ValueError(f'{name} must be non-negative, got {out_shape!r}')
    return h, w


def _rescale_size(width: int, height: int, scale: float | Sequence[float]) -> tuple[int, int]:
    """(new_w, new_h) keeping the aspect ratio, as MMCV's ``rescale_size`` (rounded half up).

    ``scale`` is a factor, or a pair of edge limits in any order: the long edge ends <= ``max(scale)`` and the
    short edge <= ``min(scale)``.
    """
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if scale <= 0:
            raise ValueError(f'rescale factor must be positive, got {scale}')
        factor = float(scale)
    else:
        long_edge, short_edge = max(scale), min(scale)
        if short_edge <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _normalise_index(index: Any, n: int) -> Any:
    """Turn torch / numpy / list indices into numpy integer indices (bool masks -> positions)."""
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    if isinstance(index, (list, tuple)):
        index = np.asarray(index) if len(index) else np.zeros(0, dtype=np.int64)
    if isinstance(index, np.ndarray):
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(f'bool mask index has shape {index.shape}, expected ({n},)')
            return np.flatnonzero(index)
        if not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f'mask index array must be integer or bool, got dtype {index.dtype}')
        return index.reshape(-1)
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, slice):
        return index
    raise IndexError(f'unsupported mask index type {type(index).__name__} (int, slice, list, bool / integer '
                     'ndarray or Tensor)')


def _row_major(mask: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a column-major (H, W) mask (pycocotools decodes in Fortran order).

    ``cv2.transpose`` of the transposed view is ~8x faster than ``np.ascontiguousarray`` for large masks.
    """
    if mask.flags.c_contiguous or mask.ndim != 2 or not mask.flags.f_contiguous:
        return np.ascontiguousarray(mask)
    if mask.dtype in (np.uint8, np.bool_):
        return _cv2().transpose(mask.T.view(np.uint8)).view(mask.dtype)
    return np.ascontiguousarray(mask)


def mask2bbox(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes of binary masks.

    Args:
        masks: (N, H, W) tensor (bool or numbers; non-zero is foreground), any device.

    Returns:
        float32 (N, 4) ``[x_min, y_min, x_max + 1, y_max + 1]`` (pixel edges, so a one-pixel mask at (y, x) gives
        ``[x, y, x + 1, y + 1]``); all zeros for an empty mask. Same result as MMDetection's ``mask2bbox``,
        computed without a per-instance loop.
    """
    if masks.dim() != 3:
        raise ValueError(f'mask2bbox expects (N, H, W) masks, got shape {tuple(masks.shape)}')
    n, h, w = masks.shape
    if n == 0:
        return masks.new_zeros((0, 4), dtype=torch.float32)
    fg = masks != 0
    x_any = fg.any(dim=1)  # (N, W)
    y_any = fg.any(dim=2)  # (N, H)
    x_idx = torch.arange(w, device=masks.device)
    y_idx = torch.arange(h, device=masks.device)
    x1 = torch.where(x_any, x_idx, w).amin(dim=1)
    x2 = torch.where(x_any, x_idx, -1).amax(dim=1) + 1
    y1 = torch.where(y_any, y_idx, h).amin(dim=1)
    y2 = torch.where(y_any, y_idx, -1).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    empty = ~x_any.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)


def polygon_to_bitmap(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise the polygons of one instance (their union) with pycocotools.

    Args:
        polygons: flat ``[x0, y0, x1, y1, ...]`` arrays (>= 3 points each), pixel coordinates.
        height, width: canvas size; parts outside it are clipped.

    Returns:
        bool (height, width) array.
    """
    import pycocotools.mask as mask_utils
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects([np.asarray(p, dtype=np.float64) for p in polygons], int(height), int(width))
    return _row_major(mask_utils.decode(mask_utils.merge(rles))).view(bool)


def bitmap_to_polygon(bitmap: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """Outer and hole contours of a binary (H, W) mask with ``cv2.findContours`` (RETR_CCOMP, no approximation).

    Returns:
        (list of int32 (K, 2) xy contour arrays, whether any contour is a hole).
    """
    cv2 = _cv2()
    contours, hierarchy = cv2.findContours(np.ascontiguousarray(bitmap).astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_NONE)[-2:]
    if hierarchy is None:
        return [], False
    with_hole = bool((hierarchy.reshape(-1, 4)[:, 3] >= 0).any())
    return [c.reshape(-1, 2) for c in contours], with_hole


class BaseInstanceMasks(metaclass=ABCMeta):
    """Common interface of :class:`BitmapMasks` and :class:`PolygonMasks` (MMDetection 3.x API).

    Attributes:
        masks: the stored masks (see the subclasses).
        height, width: size of the image the masks live in, in pixels.
    """

    height: int
    width: int
    masks: Any

    @abstractmethod
    def rescale(self, scale: float | tuple[int, int], interpolation: str = 'nearest') -> 'BaseInstanceMasks':
        """Resize keeping the aspect ratio: ``scale`` is a factor or a (long, short) edge-limit pair."""

    @abstractmethod
    def resize(self, out_shape: tuple[int, int], interpolation: str = 'nearest') -> 'BaseInstanceMasks':
        """Resize to ``out_shape`` (h, w)."""

    @abstractmethod
    def flip(self, flip_direction: str = 'horizontal') -> 'BaseInstanceMasks':
        """Flip ``'horizontal'`` (x -> w - x), ``'vertical'`` or ``'diagonal'`` (both)."""

    @abstractmethod
    def pad(self, out_shape: tuple[int, int], pad_val: int = 0) -> 'BaseInstanceMasks':
        """Pad at the bottom / right to ``out_shape`` (h, w) with ``pad_val``."""

    @abstractmethod
    def crop(self, bbox: np.ndarray) -> 'BaseInstanceMasks':
        """Crop to ``bbox`` (4,) xyxy pixels (clipped to the image)."""

    @abstractmethod
    def crop_and_resize(self, bboxes: torch.Tensor | np.ndarray, out_shape: tuple[int, int],
                        inds: torch.Tensor | np.ndarray, device: str | torch.device = 'cpu',
                        interpolation: str = 'bilinear', binarize: bool = True) -> 'BaseInstanceMasks':
        """Crop mask ``inds[i]`` to ``bboxes[i]`` and resize it to ``out_shape`` (mask-head targets)."""

    @abstractmethod
    def expand(self, expanded_h: int, expanded_w: int, top: int, left: int) -> 'BaseInstanceMasks':
        """Place the masks at (top, left) on a larger empty canvas (the ``Expand`` augmentation)."""

    @abstractmethod
    def translate(self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal',
                  border_value: int = 0, interpolation: str = 'bilinear') -> 'BaseInstanceMasks':
        """Shift by ``offset`` pixels along x (``'horizontal'``) or y (``'vertical'``)."""

    @abstractmethod
    def shear(self, out_shape: tuple[int, int], magnitude: float, direction: str = 'horizontal',
              border_value: int = 0, interpolation: str = 'bilinear') -> 'BaseInstanceMasks':
        """Shear: x' = x + magnitude * y (``'horizontal'``) or y' = y + magnitude * x (``'vertical'``)."""

    @abstractmethod
    def rotate(self, out_shape: tuple[int, int], angle: float, center: tuple[float, float] | None = None,
               scale: float = 1.0, border_value: int = 0, interpolation: str = 'bilinear') -> 'BaseInstanceMasks':
        """Rotate by ``angle`` degrees (positive = counter-clockwise) about ``center`` (x, y)."""

    @property
    @abstractmethod
    def areas(self) -> np.ndarray:
        """(N,) area of each mask in pixels."""

    @abstractmethod
    def to_ndarray(self) -> np.ndarray:
        """(N, H, W) numpy masks."""

    @abstractmethod
    def to_tensor(self, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
        """(N, H, W) tensor of ``dtype`` on ``device``."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of instances."""

    @abstractmethod
    def __getitem__(self, index: Any) -> 'BaseInstanceMasks':
        """Select instances by int, slice, list, bool / integer ndarray or Tensor."""

    @classmethod
    @abstractmethod
    def cat(cls, masks: Sequence['BaseInstanceMasks']) -> 'BaseInstanceMasks':
        """Concatenate mask objects of this type (same image size) along the instance axis."""

    def get_bboxes(self, dst_type: str = 'hbb') -> torch.Tensor:
        """Tight boxes of the masks: float32 (N, 4) xyxy pixels (``'hbb'`` / ``'hbox'`` only).

        Bitmaps give pixel edges (``x_max + 1``, see :func:`mask2bbox`); polygons give the extreme vertex
        coordinates clipped to the image. Empty masks give zeros. MMDetection returns a ``HorizontalBoxes`` of
        the same numbers; kiln uses plain tensors.

        Raises:
            ValueError: another ``dst_type``.
        """
        if dst_type not in ('hbb', 'hbox', 'hbbox'):
            raise ValueError(f"get_bboxes: only horizontal boxes ('hbb') are supported, got {dst_type!r}")
        return self._bboxes()

    @abstractmethod
    def _bboxes(self) -> torch.Tensor:
        ...

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_masks={len(self)}, height={self.height}, width={self.width})'


class BitmapMasks(BaseInstanceMasks):
    """Masks stored as a dense ``(N, H, W)`` numpy array (uint8 0/1 as loaded; bool after ``crop_and_resize``).

    Args:
        masks: (N, H, W) array, or a list of (H, W) arrays; an empty list / array gives a uint8 (0, H, W) array.
        height, width: image size in pixels; must match the arrays.

    Raises:
        TypeError: ``masks`` is neither an ndarray nor a list of ndarrays.
        ValueError: the arrays do not have the shape (H, W) = (``height``, ``width``).

    Example:
        >>> m = BitmapMasks(np.zeros((2, 4, 6), np.uint8), 4, 6)
        >>> m.resize((8, 12)).to_ndarray().shape
        (2, 8, 12)
    """

    def __init__(self, masks: np.ndarray | list[np.ndarray], height: int, width: int) -> None:
        self.height = int(height)
        self.width = int(width)
        if len(masks) == 0:
            dtype = masks.dtype if isinstance(masks, np.ndarray) else np.uint8
            self.masks = np.empty((0, self.height, self.width), dtype=dtype)
            return
        if isinstance(masks, list):
            if not all(isinstance(m, np.ndarray) and m.ndim == 2 for m in masks):
                raise TypeError('BitmapMasks: a list of masks must hold (H, W) numpy arrays')
            array = np.stack(masks)
        elif isinstance(masks, np.ndarray):
            if masks.ndim != 3:
                raise ValueError(f'BitmapMasks: masks must be (N, H, W), got shape {masks.shape}')
            array = masks
        else:
            raise TypeError(f'BitmapMasks: masks must be an ndarray or a list of ndarrays, '
                            f'got {type(masks).__name__}')
        if array.shape[1:] != (self.height, self.width):
            raise ValueError(f'BitmapMasks: masks have (H, W) = {array.shape[1:]}, but height, width = '
                             f'({self.height}, {self.width})')
        # row-major once here (pycocotools decodes column-major): every later per-mask OpenCV call is then a view
        self.masks = np.ascontiguousarray(array)

    # ------------------------------------------------------------------ container protocol
    def __len__(self) -> int:
        return len(self.masks)

    def __iter__(self):
        return iter(self.masks)

    def __getitem__(self, index: Any) -> 'BitmapMasks':
        index = _normalise_index(index, len(self))
        masks = self.masks[index].reshape(-1, self.height, self.width)
        return BitmapMasks(masks, self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence['BitmapMasks']) -> 'BitmapMasks':
        """Concatenate along the instance axis; all inputs must have the same (height, width).

        Raises:
            ValueError: empty input or different image sizes. TypeError: an input of another type.
        """
        if len(masks) == 0:
            raise ValueError('BitmapMasks.cat: got an empty sequence')
        for i, m in enumerate(masks):
            if not isinstance(m, cls):
                raise TypeError(f'BitmapMasks.cat: item {i} is {type(m).__name__}, expected {cls.__name__}')
            if (m.height, m.width) != (masks[0].height, masks[0].width):
                raise ValueError(f'BitmapMasks.cat: item {i} is {m.height}x{m.width}, item 0 is '
                                 f'{masks[0].height}x{masks[0].width}')
        return cls(np.concatenate([m.masks for m in masks], axis=0), masks[0].height, masks[0].width)

    # ------------------------------------------------------------------ geometry
    def _map_2d(self, fn, out_shape: tuple[int, int]) -> 'BitmapMasks':
        """Apply an OpenCV function to each (H, W) mask (bool masks go through uint8)."""
        h, w = out_shape
        if len(self) == 0:
            return BitmapMasks(np.empty((0, h, w), dtype=self.masks.dtype), h, w)
        src = self.masks.astype(np.uint8) if self.masks.dtype == bool else self.masks
        out = np.stack([fn(np.ascontiguousarray(m)) for m in src])
        if self.masks.dtype == bool:
            out = out.astype(bool)
        return BitmapMasks(out, h, w)

    def rescale(self, scale: float | tuple[int, int], interpolation: str = 'nearest') -> 'BitmapMasks':
        """Resize keeping the aspect ratio (MMCV ``imrescale``); see :func:`_rescale_size` for ``scale``."""
        new_w, new_h = _rescale_size(self.width, self.height, scale)
        return self.resize((new_h, new_w), interpolation)

    def resize(self, out_shape: tuple[int, int], interpolation: str = 'nearest') -> 'BitmapMasks':
        """Resize every mask to ``out_shape`` (h, w) with ``cv2.resize`` (nearest by default, as MMCV)."""
        h, w = _shape2(out_shape)
        flag = _cv2_interp(interpolation)
        cv2 = _cv2()
        if (h, w) == (self.height, self.width):
            return BitmapMasks(self.masks.copy(), h, w)
        return self._map_2d(lambda m: cv2.resize(m, (w, h), interpolation=flag), (h, w))

    def flip(self, flip_direction: str = 'horizontal') -> 'BitmapMasks':
        """Mirror the masks (``np.flip`` on the W and/or H axis)."""
        if flip_direction not in _DIRECTIONS:
            raise ValueError(f'flip_direction must be one of {_DIRECTIONS}, got {flip_direction!r}')
        axes = {'horizontal': (2,), 'vertical': (1,), 'diagonal': (1, 2)}[flip_direction]
        return BitmapMasks(np.ascontiguousarray(np.flip(self.masks, axis=axes)), self.height, self.width)

    def pad(self, out_shape: tuple[int, int], pad_val: int = 0) -> 'BitmapMasks':
        """Pad at the bottom / right to ``out_shape`` (h, w) with ``pad_val``.

        Raises:
            ValueError: ``out_shape`` is smaller than the masks.
        """
        h, w = _shape2(out_shape)
        if h < self.height or w < self.width:
            raise ValueError(f'BitmapMasks.pad: out_shape {(h, w)} is smaller than the masks '
                             f'({self.height}, {self.width})')
        out = np.full((len(self), h, w), pad_val, dtype=self.masks.dtype)
        out[:, :self.height, :self.width] = self.masks
        return BitmapMasks(out, h, w)

    def crop(self, bbox: np.ndarray) -> 'BitmapMasks':
        """Crop to ``bbox`` = (4,) ``[x1, y1, x2, y2]`` pixels, clipped to the image (at least 1x1).

        Raises:
            ValueError: ``bbox`` is not 4 numbers.
        """
        x1, y1, x2, y2 = _crop_window(bbox, self.height, self.width)
        return BitmapMasks(self.masks[:, y1:y2, x1:x2].copy(), y2 - y1, x2 - x1)

    def crop_and_resize(self, bboxes: torch.Tensor | np.ndarray, out_shape: tuple[int, int],
                        inds: torch.Tensor | np.ndarray, device: str | torch.device = 'cpu',
                        interpolation: str = 'bilinear', binarize: bool = True) -> 'BitmapMasks':
        """RoI-align mask ``inds[i]`` into box ``bboxes[i]`` at ``out_shape`` (the Mask R-CNN mask target).

        Uses ``torchvision.ops.roi_align(spatial_scale=1, sampling_ratio=0, aligned=True)`` on the masks as
        float, exactly as MMDetection (with MMCV's ``roi_align``).

        Args:
            bboxes: (K, 4) xyxy pixels (Tensor or ndarray, moved to ``device``).
            out_shape: (h, w) of each output mask, e.g. (28, 28).
            inds: (K,) int index of the mask for each box.
            device: where the RoI align runs.
            interpolation: accepted for MMDetection's signature (roi_align is bilinear).
            binarize: threshold at 0.5 -> bool masks; otherwise float32 soft masks.

        Returns:
            BitmapMasks of K masks of ``out_shape`` (bool with ``binarize``; float otherwise).

        Raises:
            ValueError: ``bboxes`` and ``inds`` differ in length.
        """
        from torchvision.ops import roi_align
        h, w = _shape2(out_shape)
        if len(self) == 0:
            return BitmapMasks(np.empty((0, h, w), dtype=np.uint8), h, w)
        if isinstance(bboxes, np.ndarray):
            bboxes = torch.from_numpy(bboxes)
        if isinstance(inds, np.ndarray):
            inds = torch.from_numpy(inds)
        bboxes = bboxes.to(device=device)
        if not bboxes.is_floating_point():
            bboxes = bboxes.float()
        num = bboxes.shape[0]
        if num == 0:
            return BitmapMasks(np.empty((0, h, w), dtype=bool if binarize else np.float32), h, w)
        inds = torch.as_tensor(inds, device=device).reshape(-1)
        if inds.numel() != num:
            raise ValueError(f'crop_and_resize: {num} boxes but {inds.numel()} mask indices')
        # the RoI's batch index picks its mask, so each mask is converted to float once, however many RoIs use
        # it (MMDetection copies the mask per RoI first; the values are the same)
        rois = torch.cat([inds.to(bboxes.dtype)[:, None], bboxes], dim=1)
        src = torch.from_numpy(self.masks.view(np.uint8) if self.masks.dtype == bool else self.masks)
        src = src.to(device=device, dtype=rois.dtype)
        targets = roi_align(src[:, None], rois, (h, w), spatial_scale=1.0, sampling_ratio=0,
                            aligned=True).squeeze(1)
        out = (targets >= 0.5) if binarize else targets
        return BitmapMasks(out.cpu().numpy(), h, w)

    def expand(self, expanded_h: int, expanded_w: int, top: int, left: int) -> 'BitmapMasks':
        """Zero canvas of (expanded_h, expanded_w) with the masks pasted at (top, left)."""
        out = np.zeros((len(self), expanded_h, expanded_w), dtype=self.masks.dtype)
        out[:, top:top + self.height, left:left + self.width] = self.masks
        return BitmapMasks(out, expanded_h, expanded_w)

    def _warp(self, matrix: np.ndarray, out_shape: tuple[int, int], border_value: int,
              interpolation: str) -> 'BitmapMasks':
        h, w = _shape2(out_shape)
        flag = _cv2_interp(interpolation)
        cv2 = _cv2()
        return self._map_2d(lambda m: cv2.warpAffine(m, matrix, (w, h), flags=flag,
                                                     borderMode=cv2.BORDER_CONSTANT,
                                                     borderValue=border_value), (h, w))

    def translate(self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal',
                  border_value: int = 0, interpolation: str = 'bilinear') -> 'BitmapMasks':
        """Shift by ``offset`` pixels (MMCV ``imtranslate``: ``cv2.warpAffine``), output ``out_shape``."""
        matrix = _translate_matrix(offset, direction)
        return self._warp(matrix, out_shape, border_value, interpolation)

    def shear(self, out_shape: tuple[int, int], magnitude: float, direction: str = 'horizontal',
              border_value: int = 0, interpolation: str = 'bilinear') -> 'BitmapMasks':
        """Shear (MMCV ``imshear``: ``cv2.warpAffine``), output ``out_shape``."""
        matrix = _shear_matrix(magnitude, direction)
        return self._warp(matrix, out_shape, border_value, interpolation)

    def rotate(self, out_shape: tuple[int, int], angle: float, center: tuple[float, float] | None = None,
               scale: float = 1.0, border_value: int = 0, interpolation: str = 'bilinear') -> 'BitmapMasks':
        """Rotate counter-clockwise by ``angle`` degrees (MMCV ``imrotate``); ``center`` defaults to the
        image centre ``((w - 1) / 2, (h - 1) / 2)``."""
        if center is None:
            center = ((self.width - 1) * 0.5, (self.height - 1) * 0.5)
        matrix = _cv2().getRotationMatrix2D(tuple(float(c) for c in center), -angle, scale)
        return self._warp(matrix, out_shape, border_value, interpolation)

    # ------------------------------------------------------------------ conversion
    @property
    def areas(self) -> np.ndarray:
        """(N,) number of foreground pixels of each mask (sum of the values)."""
        return self.masks.sum((1, 2))

    def to_ndarray(self) -> np.ndarray:
        """The stored (N, H, W) array (not a copy)."""
        return self.masks

    def to_tensor(self, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
        """(N, H, W) tensor of ``dtype`` on ``device`` (a copy)."""
        return torch.tensor(self.masks, dtype=dtype, device=device)

    def _bboxes(self) -> torch.Tensor:
        return mask2bbox(torch.from_numpy(np.ascontiguousarray(self.masks)))


class PolygonMasks(BaseInstanceMasks):
    """Masks stored as polygons: ``masks[i]`` is the list of flat ``[x0, y0, x1, y1, ...]`` float arrays
    (the parts) of instance ``i``, in pixel coordinates (COCO ``segmentation`` polygons).

    Geometry is exact polygon arithmetic (no rasterisation until :meth:`to_ndarray` / :meth:`to_bitmap`, done
    by pycocotools, which clips to the canvas).

    Args:
        masks: list (instances) of lists (parts) of 1-D numpy arrays with an even number of coordinates.
        height, width: image size in pixels.

    Raises:
        TypeError: ``masks`` is not a list of lists of ndarrays.
    """

    def __init__(self, masks: list[list[np.ndarray]], height: int, width: int) -> None:
        if not isinstance(masks, list):
            raise TypeError(f'PolygonMasks: masks must be a list (instances) of lists (parts) of ndarrays, '
                            f'got {type(masks).__name__}')
        for i, obj in enumerate(masks):
            if not isinstance(obj, list) or not all(isinstance(p, np.ndarray) for p in obj):
                raise TypeError(f'PolygonMasks: instance {i} must be a list of 1-D ndarrays '
                                f'[x0, y0, x1, y1, ...], got {type(obj).__name__}')
        self.height = int(height)
        self.width = int(width)
        self.masks = masks

    # ------------------------------------------------------------------ container protocol
    def __len__(self) -> int:
        return len(self.masks)

    def __iter__(self):
        return iter(self.masks)

    def __getitem__(self, index: Any) -> 'PolygonMasks':
        index = _normalise_index(index, len(self))
        if isinstance(index, int):
            masks = [self.masks[index]]
        elif isinstance(index, slice):
            masks = self.masks[index]
        else:
            masks = [self.masks[int(i)] for i in index]
        return PolygonMasks(masks, self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence['PolygonMasks']) -> 'PolygonMasks':
        """Concatenate along the instance axis (image size taken from the first; all must agree).

        Raises:
            ValueError: empty input or different image sizes. TypeError: an input of another type.
        """
        if len(masks) == 0:
            raise ValueError('PolygonMasks.cat: got an empty sequence')
        for i, m in enumerate(masks):
            if not isinstance(m, cls):
                raise TypeError(f'PolygonMasks.cat: item {i} is {type(m).__name__}, expected {cls.__name__}')
            if (m.height, m.width) != (masks[0].height, masks[0].width):
                raise ValueError(f'PolygonMasks.cat: item {i} is {m.height}x{m.width}, item 0 is '
                                 f'{masks[0].height}x{masks[0].width}')
        return cls(list(itertools.chain.from_iterable(m.masks for m in masks)), masks[0].height,
                   masks[0].width)

    # ------------------------------------------------------------------ geometry
    def _map_points(self, fn, out_shape: tuple[int, int]) -> 'PolygonMasks':
        """Apply ``fn((K, 2) float64 xy) -> (K, 2)`` to every polygon."""
        h, w = out_shape
        out = []
        for obj in self.masks:
            parts = []
            for p in obj:
                xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
                parts.append(np.asarray(fn(xy), dtype=np.float64).reshape(-1))
            out.append(parts)
        return PolygonMasks(out, h, w)

    def rescale(self, scale: float | tuple[int, int], interpolation: str | None = None) -> 'PolygonMasks':
        """Scale keeping the aspect ratio (same output size as :meth:`BitmapMasks.rescale`)."""
        new_w, new_h = _rescale_size(self.width, self.height, scale)
        return self.resize((new_h, new_w))

    def resize(self, out_shape: tuple[int, int], interpolation: str | None = None) -> 'PolygonMasks':
        """Scale x by ``w_out / width`` and y by ``h_out / height``."""
        h, w = _shape2(out_shape)
        sx, sy = w / self.width, h / self.height
        return self._map_points(lambda xy: xy * np.array([sx, sy]), (h, w))

    def flip(self, flip_direction: str = 'horizontal') -> 'PolygonMasks':
        """Mirror: x -> width - x (``'horizontal'``), y -> height - y (``'vertical'``), or both."""
        if flip_direction not in _DIRECTIONS:
            raise ValueError(f'flip_direction must be one of {_DIRECTIONS}, got {flip_direction!r}')
        fx = flip_direction in ('horizontal', 'diagonal')
        fy = flip_direction in ('vertical', 'diagonal')

        def fn(xy: np.ndarray) -> np.ndarray:
            xy = xy.copy()
            if fx:
                xy[:, 0] = self.width - xy[:, 0]
            if fy:
                xy[:, 1] = self.height - xy[:, 1]
            return xy
        return self._map_points(fn, (self.height, self.width))

    def pad(self, out_shape: tuple[int, int], pad_val: int = 0) -> 'PolygonMasks':
        """Bottom / right padding leaves the coordinates unchanged: only the canvas grows."""
        h, w = _shape2(out_shape)
        return PolygonMasks([list(obj) for obj in self.masks], h, w)

    def crop(self, bbox: np.ndarray) -> 'PolygonMasks':
        """Shift the polygons into the crop window ``bbox`` (4,) xyxy (clipped to the image, at least 1x1).

        Vertices outside the window are kept (rasterisation and :meth:`get_bboxes` clip to the canvas);
        MMDetection >= 3.1 clips the polygons with shapely instead, which gives the same pixels.
        """
        x1, y1, x2, y2 = _crop_window(bbox, self.height, self.width)
        return self._map_points(lambda xy: xy - np.array([x1, y1]), (y2 - y1, x2 - x1))

    def crop_and_resize(self, bboxes: torch.Tensor | np.ndarray, out_shape: tuple[int, int],
                        inds: torch.Tensor | np.ndarray, device: str | torch.device = 'cpu',
                        interpolation: str = 'bilinear', binarize: bool = True) -> 'PolygonMasks':
        """Map polygon ``inds[i]`` into box ``bboxes[i]`` scaled to ``out_shape`` (exact polygon arithmetic).

        Each box is taken at least 1 pixel wide / high, as MMDetection does. Call :meth:`to_ndarray` on the
        result for the (K, h, w) bool targets.

        Raises:
            ValueError: ``binarize=False`` (polygons are binary).
        """
        h, w = _shape2(out_shape)
        if not binarize:
            raise ValueError('PolygonMasks.crop_and_resize: polygons are binary; binarize=False is unsupported')
        if len(self) == 0:
            return PolygonMasks([], h, w)
        if isinstance(bboxes, torch.Tensor):
            bboxes = bboxes.detach().cpu().numpy()
        if isinstance(inds, torch.Tensor):
            inds = inds.detach().cpu().numpy()
        bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
        inds = np.asarray(inds).reshape(-1)
        out = []
        for box, ind in zip(bboxes, inds):
            bw = max(box[2] - box[0], 1.0)
            bh = max(box[3] - box[1], 1.0)
            scale = np.array([w / max(bw, 0.1), h / max(bh, 0.1)])
            origin = box[:2]
            out.append([((np.asarray(p, dtype=np.float64).reshape(-1, 2) - origin) * scale).reshape(-1)
                        for p in self.masks[int(ind)]])
        return PolygonMasks(out, h, w)

    def expand(self, expanded_h: int, expanded_w: int, top: int, left: int) -> 'PolygonMasks':
        """Shift by (left, top) onto a (expanded_h, expanded_w) canvas (MMDetection leaves this unimplemented)."""
        return self._map_points(lambda xy: xy + np.array([left, top]), (expanded_h, expanded_w))

    def translate(self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal',
                  border_value: int | None = None, interpolation: str | None = None) -> 'PolygonMasks':
        """Shift x (``'horizontal'``) or y (``'vertical'``) by ``offset``, clipped to ``out_shape``.

        Raises:
            ValueError: a non-zero ``border_value`` (meaningless for polygons) or an unknown direction.
        """
        if border_value not in (None, 0):
            raise ValueError(f'PolygonMasks.translate: border_value must be None or 0, got {border_value}')
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")
        h, w = _shape2(out_shape)
        axis = 0 if direction == 'horizontal' else 1
        limit = w if axis == 0 else h

        def fn(xy: np.ndarray) -> np.ndarray:
            xy = xy.copy()
            xy[:, axis] = np.clip(xy[:, axis] + offset, 0, limit)
            return xy
        return self._map_points(fn, (h, w))

    def _affine(self, matrix: np.ndarray, out_shape: tuple[int, int]) -> 'PolygonMasks':
        h, w = _shape2(out_shape)
        lin, shift = matrix[:, :2], matrix[:, 2]
        return self._map_points(lambda xy: np.clip(xy @ lin.T + shift, 0, [w, h]), (h, w))

    def shear(self, out_shape: tuple[int, int], magnitude: float, direction: str = 'horizontal',
              border_value: int = 0, interpolation: str = 'bilinear') -> 'PolygonMasks':
        """Shear the vertices (same matrix as :meth:`BitmapMasks.shear`), clipped to ``out_shape``."""
        return self._affine(_shear_matrix(magnitude, direction), out_shape)

    def rotate(self, out_shape: tuple[int, int], angle: float, center: tuple[float, float] | None = None,
               scale: float = 1.0, border_value: int = 0, interpolation: str = 'bilinear') -> 'PolygonMasks':
        """Rotate the vertices (same matrix as :meth:`BitmapMasks.rotate`), clipped to ``out_shape``."""
        if center is None:
            center = ((self.width - 1) * 0.5, (self.height - 1) * 0.5)
        matrix = _cv2().getRotationMatrix2D(tuple(float(c) for c in center), -angle, scale)
        return self._affine(matrix, out_shape)

    # ------------------------------------------------------------------ conversion
    @property
    def areas(self) -> np.ndarray:
        """(N,) float64 polygon areas (shoelace formula, parts summed; overlaps / clipping not handled)."""
        out = np.zeros(len(self), dtype=np.float64)
        for i, obj in enumerate(self.masks):
            for p in obj:
                x, y = np.asarray(p, dtype=np.float64)[0::2], np.asarray(p, dtype=np.float64)[1::2]
                out[i] += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        return out

    def to_ndarray(self) -> np.ndarray:
        """Rasterise with pycocotools: bool (N, H, W)."""
        if len(self) == 0:
            return np.empty((0, self.height, self.width), dtype=np.uint8)
        return np.stack([polygon_to_bitmap(obj, self.height, self.width) for obj in self.masks])

    def to_bitmap(self) -> BitmapMasks:
        """Rasterised copy as :class:`BitmapMasks` (bool)."""
        return BitmapMasks(self.to_ndarray(), self.height, self.width)

    def to_tensor(self, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
        """Rasterised (N, H, W) tensor of ``dtype`` on ``device``."""
        return torch.tensor(self.to_ndarray(), dtype=dtype, device=device)

    def _bboxes(self) -> torch.Tensor:
        out = np.zeros((len(self), 4), dtype=np.float32)
        for i, obj in enumerate(self.masks):
            pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in obj if len(p) >= 2]
            if not pts:
                continue
            xy = np.concatenate(pts)
            xy = np.clip(xy, 0, [self.width, self.height])
            out[i] = [xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()]
        return torch.from_numpy(out)


def _crop_window(bbox: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer crop window clipped to the image, at least 1 pixel wide and high (MMDetection's ``crop``)."""
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f'crop: bbox must be 4 numbers [x1, y1, x2, y2], got {bbox!r}')
    box[0::2] = np.clip(box[0::2], 0, width)
    box[1::2] = np.clip(box[1::2], 0, height)
    x1, y1, x2, y2 = (int(v) for v in box)
    w = max(x2 - x1, 1)
    h = max(y2 - y1, 1)
    return x1, y1, x1 + w, y1 + h


def _translate_matrix(offset: float, direction: str) -> np.ndarray:
    if direction == 'horizontal':
        return np.array([[1, 0, offset], [0, 1, 0]], dtype=np.float32)
    if direction == 'vertical':
        return np.array([[1, 0, 0], [0, 1, offset]], dtype=np.float32)
    raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")


def _shear_matrix(magnitude: float, direction: str) -> np.ndarray:
    if direction == 'horizontal':
        return np.array([[1, magnitude, 0], [0, 1, 0]], dtype=np.float32)
    if direction == 'vertical':
        return np.array([[1, 0, 0], [magnitude, 1, 0]], dtype=np.float32)
    raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")
