"""Resizing transforms: ``Resize`` and ``RandomResize``.

Reference: MMCV 2.x ``mmcv.transforms.Resize`` / ``RandomResize`` and MMDetection 3.x
``mmdet.datasets.transforms.Resize`` (behaviour), re-implemented with OpenCV (default) / Pillow / torch.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

_PIL_FILTERS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def rescale_size(old_size: tuple[int, int], scale: float | tuple[int, int]) -> tuple[int, int]:
    """New (w, h) of an image of size ``old_size`` (w, h) rescaled with its aspect ratio kept.

    ``scale`` is a factor, or a (long-edge, short-edge) limit pair in any order: the result is the largest size
    whose long edge is <= ``max(scale)`` and short edge <= ``min(scale)`` (MMCV's ``rescale_size``). Sizes are
    rounded half up.

    Raises:
        ValueError: a non-positive factor or limit.
    """
    w, h = old_size
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if scale <= 0:
            raise ValueError(f'rescale factor must be positive, got {scale}')
        factor = float(scale)
    else:
        long_edge, short_edge = max(scale), min(scale)
        if short_edge <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def imresize(img: np.ndarray, size: tuple[int, int], interpolation: str = 'bilinear',
             backend: str = 'cv2') -> np.ndarray:
    """Resize ``img`` ((H, W) or (H, W, C) numpy) to ``size`` = (w, h).

    ``backend='cv2'`` (MMCV's default) uses ``cv2.resize`` (no antialiasing when shrinking, as MMCV) for the
    dtypes OpenCV handles; ``'pillow'`` uses Pillow for uint8 images with 1 or 3 channels (its bilinear filter
    antialiases when shrinking). Other dtypes / channel counts use ``torch.nn.functional.interpolate``
    (``align_corners=False``). The dtype and the channel axis are kept.

    Raises:
        ValueError: unknown ``interpolation`` or a non-positive size.
    """
    if interpolation not in _PIL_FILTERS:
        raise ValueError(f'interpolation must be one of {_PIL_FILTERS}, got {interpolation!r}')
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f'target size must be positive, got (w, h) = {size}')
    if img.shape[0] == h and img.shape[1] == w:
        return img.copy()
    if backend == 'cv2' and img.dtype in _CV2_DTYPES and (img.ndim == 2 or img.shape[2] <= 512):
        import cv2
        flag = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
                'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4}[interpolation]
        out = cv2.resize(img, (w, h), interpolation=flag)
        return out[..., None] if img.ndim == 3 and out.ndim == 2 else out
    if img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] in (1, 3)):
        from PIL import Image
        pil_filter = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC,
                      'area': Image.BOX, 'lanczos': Image.LANCZOS}[interpolation]
        squeeze = img.ndim == 3 and img.shape[2] == 1
        src = img[..., 0] if squeeze else img
        out = np.asarray(Image.fromarray(np.ascontiguousarray(src)).resize((w, h), pil_filter))
        return out[..., None] if squeeze else out
    import torch
    import torch.nn.functional as F
    mode = {'nearest': 'nearest', 'bilinear': 'bilinear', 'bicubic': 'bicubic', 'area': 'area',
            'lanczos': 'bicubic'}[interpolation]
    t = torch.from_numpy(np.ascontiguousarray(img)).float()
    t = t[None, None] if img.ndim == 2 else t.permute(2, 0, 1)[None]
    kwargs: dict[str, Any] = {} if mode in ('nearest', 'area') else dict(align_corners=False)
    out_t = F.interpolate(t, size=(h, w), mode=mode, **kwargs)[0]
    out_t = out_t[0] if img.ndim == 2 else out_t.permute(1, 2, 0)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out_t = out_t.round().clamp(info.min, info.max)
    return out_t.numpy().astype(img.dtype)


def _pair(value: Any, name: str) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, Sequence) and len(value) == 2:
        return tuple(value)
    raise TypeError(f'Resize: {name} must be a number or a (w, h) pair, got {value!r}')


@TRANSFORMS.register_module()
class Resize(BaseTransform):
    """Resize the image and its boxes to a fixed size or by a factor.

    Reads: ``img``, optional ``scale`` (set by :class:`RandomResize`), ``gt_bboxes``, ``gt_masks``,
    ``scale_factor``.
    Writes: ``img``, ``img_shape`` (h, w), ``scale`` (w, h) target, ``scale_factor`` (w_scale, h_scale) as
    floats, ``keep_ratio``, ``gt_bboxes`` (float32 (N, 4) xyxy, scaled and, with ``clip_object_border``,
    clipped to the new image), ``gt_masks`` (resized to the new image size: nearest-neighbour for
    ``BitmapMasks``, scaled vertices for ``PolygonMasks``).

    ``scale_factor`` maps original-image pixels to pixels of the current image: when the pipeline already holds
    one (an earlier resize), the new factor is multiplied into it, so ``bboxes / scale_factor`` always gives
    original-image coordinates.

    Args:
        scale: target (w, h) (an int means (s, s)). With ``keep_ratio`` it is a (long-edge, short-edge) limit
            pair: the image is scaled by the largest factor that fits both (MMCV ``rescale``), e.g.
            ``scale=(1333, 800)`` resizes 640x480 to 1067x800.
        scale_factor: resize by this factor (float or (w, h) factors) when ``scale`` is None.
        keep_ratio: keep the aspect ratio (see ``scale``); without it the image is stretched to ``scale``.
        clip_object_border: clip the boxes to the resized image.
        interpolation: ``'bilinear'`` (default), ``'nearest'``, ``'bicubic'``, ``'area'``, ``'lanczos'``.
        backend: ``'cv2'`` (default, MMCV's: ``cv2.resize``) or ``'pillow'`` (antialiased when shrinking).

    Raises:
        ValueError: neither ``scale`` nor ``scale_factor`` given.
        KeyError: ``results`` has no ``img``.
    """

    def __init__(self, scale: int | Sequence[int] | None = None,
                 scale_factor: float | Sequence[float] | None = None, keep_ratio: bool = True,
                 clip_object_border: bool = True, backend: str = 'cv2', interpolation: str = 'bilinear') -> None:
        if scale is None and scale_factor is None:
            raise ValueError('Resize: give `scale` or `scale_factor`')
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f'Resize: interpolation must be one of {_PIL_FILTERS}, got {interpolation!r}')
        if backend not in ('cv2', 'pillow'):
            raise ValueError(f"Resize: backend must be 'cv2' or 'pillow', got {backend!r}")
        self.scale = None if scale is None else tuple(int(s) for s in _pair(scale, 'scale'))
        self.scale_factor = None if scale_factor is None else (
            float(scale_factor) if isinstance(scale_factor, (int, float)) else
            tuple(float(s) for s in _pair(scale_factor, 'scale_factor')))
        self.keep_ratio = keep_ratio
        self.clip_object_border = clip_object_border
        self.backend = backend
        self.interpolation = interpolation

    def _target_size(self, results: dict, w: int, h: int) -> tuple[int, int]:
        if self.scale:
            results['scale'] = self.scale
        else:
            sf = _pair(self.scale_factor, 'scale_factor')
            results['scale'] = (int(w * sf[0] + 0.5), int(h * sf[1] + 0.5))
        scale = tuple(results['scale'])
        return rescale_size((w, h), scale) if self.keep_ratio else (int(scale[0]), int(scale[1]))

    def transform(self, results: dict) -> dict:
        """Resize ``results`` in place (see the class docstring for the keys)."""
        if 'img' not in results:
            raise KeyError(f'Resize: results has no "img" (keys: {sorted(results)}); put LoadImageFromFile first')
        img = results['img']
        h, w = img.shape[:2]
        new_w, new_h = self._target_size(results, w, h)
        results['img'] = imresize(img, (new_w, new_h), self.interpolation, self.backend)
        w_scale, h_scale = new_w / w, new_h / h
        results['img_shape'] = (new_h, new_w)
        old = results.get('scale_factor')
        if old is not None:
            results['scale_factor'] = (float(old[0]) * w_scale, float(old[1]) * h_scale)
        else:
            results['scale_factor'] = (w_scale, h_scale)
        results['keep_ratio'] = self.keep_ratio
        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'], dtype=np.float32) * np.array(
                [w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
            if self.clip_object_border:
                boxes[:, 0::2] = boxes[:, 0::2].clip(0, new_w)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0, new_h)
            results['gt_bboxes'] = boxes
        if results.get('gt_masks') is not None:
            # nearest-neighbour resize to exactly the new image size (MMDetection: ``rescale`` with keep_ratio,
            # ``resize`` without; both give this size)
            results['gt_masks'] = results['gt_masks'].resize((new_h, new_w))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, scale_factor={self.scale_factor}, '
                f'keep_ratio={self.keep_ratio}, clip_object_border={self.clip_object_border}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class RandomResize(BaseTransform):
    """Resize to a randomly drawn scale, then behave like :class:`Resize`.

    Scale sampling (MMCV semantics, numpy's global RNG):

    * ``scale=(w, h)`` with ``ratio_range=(lo, hi)``: target ``(int(w * r), int(h * r))``, ``r ~ U(lo, hi)``;
    * ``scale=[(w1, h1), (w2, h2)]`` (no ``ratio_range``): each edge drawn uniformly (integers, inclusive) between
      the two given values, e.g. ``[(1333, 640), (1333, 800)]`` for multi-scale training.

    Reads / writes: as :class:`Resize` (``scale`` is the drawn target).

    Args:
        scale: see above.
        ratio_range: (min, max) ratio for a single ``scale``.
        resize_type: registered resize transform doing the work (default ``'Resize'``).
        **resize_kwargs: its arguments (``keep_ratio`` defaults to True, ``clip_object_border``,
            ``interpolation``).

    Raises:
        ValueError: ``scale`` is neither one (w, h) pair with ``ratio_range`` nor two pairs.
    """

    def __init__(self, scale: Sequence, ratio_range: tuple[float, float] | None = None,
                 resize_type: str = 'Resize', **resize_kwargs: Any) -> None:
        pairs = isinstance(scale, Sequence) and len(scale) > 0 and all(
            isinstance(s, Sequence) and len(s) == 2 for s in scale)
        if pairs and len(scale) == 2 and ratio_range is None:
            self.scale: Any = [tuple(int(v) for v in s) for s in scale]
        elif not pairs and ratio_range is not None and len(ratio_range) == 2:
            self.scale = tuple(int(v) for v in _pair(scale, 'scale'))
        else:
            raise ValueError(f'RandomResize: expected scale=(w, h) with ratio_range=(lo, hi), or '
                             f'scale=[(w1, h1), (w2, h2)] without ratio_range; got scale={scale!r}, '
                             f'ratio_range={ratio_range!r}')
        self.ratio_range = ratio_range
        self.resize = TRANSFORMS.build(dict(type=resize_type, scale=(1, 1), **resize_kwargs))

    def _random_scale(self) -> tuple[int, int]:
        if self.ratio_range is not None:
            lo, hi = self.ratio_range
            ratio = np.random.random_sample() * (hi - lo) + lo
            return int(self.scale[0] * ratio), int(self.scale[1] * ratio)
        (w1, h1), (w2, h2) = self.scale
        return (int(np.random.randint(min(w1, w2), max(w1, w2) + 1)),
                int(np.random.randint(min(h1, h2), max(h1, h2) + 1)))

    def transform(self, results: dict) -> dict:
        """Draw a scale, store it in ``results['scale']`` and resize (see :class:`Resize`)."""
        results['scale'] = self._random_scale()
        self.resize.scale = results['scale']
        return self.resize(results)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale}, ratio_range={self.ratio_range}, resize={self.resize!r})'
