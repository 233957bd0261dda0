"""Pixel-only augmentations: ``PhotoMetricDistortion``, ``YOLOXHSVRandomAug`` and ``CutOut``.

Reference: MMDetection 3.3 ``mmdet.datasets.transforms`` (same names, arguments, numpy draws in the same order),
re-implemented with OpenCV (``cv2.cvtColor``, ``cv2.LUT``) and numpy slicing. None of them moves a pixel, so
boxes, labels, ignore flags and masks are left untouched.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PhotoMetricDistortion(BaseTransform):
    """SSD's colour jitter: brightness, contrast, saturation, hue and channel swap, each with probability 1/2.

    Draws (numpy, MMDetection's order): ``mode``, then the five on/off flags (brightness, contrast, saturation,
    hue, swap), then the values: brightness ``delta ~ U(-brightness_delta, brightness_delta)``, contrast
    ``alpha ~ U(contrast_range)``, saturation factor ``~ U(saturation_range)``, hue shift
    ``~ U(-hue_delta, hue_delta)`` degrees, channel permutation. Steps: ``img += delta``; with ``mode == 1``
    contrast first (``img *= alpha``); to HSV (``cv2.cvtColor`` on float32: H in degrees, S in [0, 1]);
    ``S *= factor`` (clipped to 1 when the factor exceeds 1); ``H += shift`` wrapped into [0, 360]; back to BGR;
    with ``mode == 0`` contrast last; channel swap.

    Reads: ``img`` (H, W, 3) BGR. Writes: ``img`` as float32 (values are not clipped to 0..255, as in
    MMDetection; the data preprocessor normalises them).

    Args:
        brightness_delta: largest brightness shift (pixel units).
        contrast_range: (lo, hi) contrast factor.
        saturation_range: (lo, hi) saturation factor.
        hue_delta: largest hue shift in degrees.

    Raises:
        KeyError: no ``img``. ValueError: the image is not (H, W, 3).

    Source: SSD (Liu et al., 2016); MMDetection 3.3 ``PhotoMetricDistortion``.
    """

    def __init__(self, brightness_delta: int = 32, contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5), hue_delta: int = 18) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta

    def _random_flags(self) -> tuple:
        r = np.random
        flags = [int(r.randint(2)) for _ in range(6)]
        values = (r.uniform(-self.brightness_delta, self.brightness_delta),
                  r.uniform(self.contrast_lower, self.contrast_upper),
                  r.uniform(self.saturation_lower, self.saturation_upper),
                  r.uniform(-self.hue_delta, self.hue_delta), r.permutation(3))
        return (*flags, *values)

    def transform(self, results: dict) -> dict:
        """Distort ``results['img']`` (see the class docstring)."""
        import cv2
        if 'img' not in results:
            raise KeyError(f'PhotoMetricDistortion: results has no "img" (keys: {sorted(results)})')
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'PhotoMetricDistortion: expected an (H, W, 3) BGR image for '
                             f'{results.get("img_path", "?")}, got shape {img.shape}')
        (mode, brightness, contrast, saturation, hue, swap, delta, alpha, sat_value, hue_value,
         perm) = self._random_flags()
        img = img.astype(np.float32)  # a new array: the caller's image is not modified
        if brightness:
            img += np.float32(delta)
        if mode == 1 and contrast:
            img *= np.float32(alpha)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        if saturation:
            s = hsv[..., 1]
            s *= np.float32(sat_value)
            if sat_value > 1:
                np.clip(s, 0, 1, out=s)
        if hue:
            h = hsv[..., 0]
            h += np.float32(hue_value)
            h[h > 360] -= 360
            h[h < 0] += 360
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        if mode == 0 and contrast:
            img *= np.float32(alpha)
        if swap:
            img = np.ascontiguousarray(img[..., perm])
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range={(self.contrast_lower, self.contrast_upper)}, '
                f'saturation_range={(self.saturation_lower, self.saturation_upper)}, hue_delta={self.hue_delta})')


@TRANSFORMS.register_module()
class YOLOXHSVRandomAug(BaseTransform):
    """YOLOX's HSV jitter on a uint8 BGR image, through OpenCV's 8-bit HSV (H in 0..179).

    Gains (numpy): ``np.random.uniform(-1, 1, 3) * (hue_delta, saturation_delta, value_delta)``, each kept with
    probability 1/2 (``np.random.randint(0, 2, 3)``), truncated to integers. H is shifted modulo 180, S and V
    are shifted and clipped to 0..255, applied with ``cv2.LUT`` (same values as MMDetection's int16 arithmetic).

    Reads: ``img`` (H, W, 3) uint8 BGR. Writes: ``img`` (a new uint8 array).

    Raises:
        TypeError: the image is not uint8 (put this transform before ``PhotoMetricDistortion`` / float
            conversions). ValueError: the image is not (H, W, 3).

    Source: YOLOX (Ge et al., 2021); MMDetection 3.3 ``YOLOXHSVRandomAug``.
    """

    def __init__(self, hue_delta: int = 5, saturation_delta: int = 30, value_delta: int = 30) -> None:
        self.hue_delta = hue_delta
        self.saturation_delta = saturation_delta
        self.value_delta = value_delta

    def _gains(self) -> np.ndarray:
        gains = np.random.uniform(-1, 1, 3) * [self.hue_delta, self.saturation_delta, self.value_delta]
        gains *= np.random.randint(0, 2, 3)
        return gains.astype(np.int16)

    def transform(self, results: dict) -> dict:
        """Jitter ``results['img']`` (see the class docstring)."""
        import cv2
        img = results['img']
        if img.dtype != np.uint8:
            raise TypeError(f'YOLOXHSVRandomAug: expected a uint8 image for {results.get("img_path", "?")}, '
                            f'got {img.dtype}')
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'YOLOXHSVRandomAug: expected an (H, W, 3) BGR image, got shape {img.shape}')
        gh, gs, gv = (int(g) for g in self._gains())
        x = np.arange(256, dtype=np.int16)
        lut_h = ((x + gh) % 180).astype(np.uint8)
        lut_s = np.clip(x + gs, 0, 255).astype(np.uint8)
        lut_v = np.clip(x + gv, 0, 255).astype(np.uint8)
        h, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
        hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
        results['img'] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(hue_delta={self.hue_delta}, saturation_delta={self.saturation_delta}, '
                f'value_delta={self.value_delta})')


@TRANSFORMS.register_module()
class CutOut(BaseTransform):
    """Fill random rectangles of the image with ``fill_in`` (boxes and masks are kept as they are).

    ``n ~ randint(n_holes[0], n_holes[1] + 1)`` holes; each: top-left ``x1 ~ randint(0, w)``,
    ``y1 ~ randint(0, h)``, a size picked uniformly from the candidates (``cutout_shape`` (w, h) pixels or
    ``cutout_ratio`` (w, h) fractions of the image), clipped to the image (numpy draws, MMDetection's order).

    Reads / writes: ``img`` (modified in place, dtype kept).

    Args:
        n_holes: number of holes, or an inclusive (min, max) range.
        cutout_shape: a (w, h) pair or a list of them.
        cutout_ratio: a (w, h) ratio pair or a list of them (exactly one of the two is given).
        fill_in: pixel value of the holes (image channel order).

    Raises:
        ValueError: both or neither of ``cutout_shape`` / ``cutout_ratio``, or a bad ``n_holes`` range.

    Source: DeVries & Taylor, "Improved Regularization of CNNs with Cutout" (2017); MMDetection 3.3 ``CutOut``.
    """

    def __init__(self, n_holes: int | tuple[int, int], cutout_shape: tuple | list | None = None,
                 cutout_ratio: tuple | list | None = None, fill_in: tuple = (0, 0, 0)) -> None:
        if (cutout_shape is None) == (cutout_ratio is None):
            raise ValueError('CutOut: give exactly one of cutout_shape and cutout_ratio')
        candidates = cutout_ratio if cutout_ratio is not None else cutout_shape
        if not isinstance(candidates, (list, tuple)):
            raise ValueError(f'CutOut: cutout_shape / cutout_ratio must be a pair or a list of pairs, '
                             f'got {candidates!r}')
        if isinstance(n_holes, (tuple, list)):
            if len(n_holes) != 2 or not 0 <= n_holes[0] < n_holes[1]:
                raise ValueError(f'CutOut: n_holes range must be (min, max) with 0 <= min < max, got {n_holes!r}')
            n_holes = (int(n_holes[0]), int(n_holes[1]))
        else:
            n_holes = (int(n_holes), int(n_holes))
        self.n_holes = n_holes
        self.fill_in = fill_in
        self.with_ratio = cutout_ratio is not None
        self.candidates = list(candidates) if isinstance(candidates, list) else [candidates]

    def transform(self, results: dict) -> dict:
        """Cut holes in ``results['img']`` (see the class docstring)."""
        img = results['img']
        h, w = img.shape[:2]
        for _ in range(np.random.randint(self.n_holes[0], self.n_holes[1] + 1)):
            x1 = np.random.randint(0, w)
            y1 = np.random.randint(0, h)
            index = np.random.randint(0, len(self.candidates))
            if self.with_ratio:
                cw, ch = int(self.candidates[index][0] * w), int(self.candidates[index][1] * h)
            else:
                cw, ch = self.candidates[index]
            x2, y2 = int(np.clip(x1 + cw, 0, w)), int(np.clip(y1 + ch, 0, h))
            img[y1:y2, x1:x2] = self.fill_in if img.ndim == 3 else self.fill_in[0]
        results['img'] = img
        return results

    def __repr__(self) -> str:
        kind = 'cutout_ratio' if self.with_ratio else 'cutout_shape'
        return f'{type(self).__name__}(n_holes={self.n_holes}, {kind}={self.candidates}, fill_in={self.fill_in})'
