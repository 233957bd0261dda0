"""``RandomFlip``: flip the image and its boxes horizontally, vertically or both.

Reference: MMCV 2.x ``mmcv.transforms.RandomFlip`` / MMDetection 3.x ``mmdet.datasets.transforms.RandomFlip``
(behaviour), re-implemented with numpy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

DIRECTIONS = ('horizontal', 'vertical', 'diagonal')


def bbox_flip(bboxes: np.ndarray, img_shape: tuple[int, int], direction: str) -> np.ndarray:
    """Flip xyxy boxes (numpy or torch, (..., 4)) inside an image of ``img_shape`` (h, w).

    ``'horizontal'``: x -> w - x; ``'vertical'``: y -> h - y; ``'diagonal'``: both (MMDetection's convention).
    Works for torch tensors too (returns the same type). Flipping twice gives the input back.

    Raises:
        ValueError: unknown ``direction``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f'flip direction must be one of {DIRECTIONS}, got {direction!r}')
    h, w = img_shape[:2]
    flipped = bboxes.clone() if hasattr(bboxes, 'clone') else bboxes.copy()
    if direction in ('horizontal', 'diagonal'):
        flipped[..., 0] = w - bboxes[..., 2]
        flipped[..., 2] = w - bboxes[..., 0]
    if direction in ('vertical', 'diagonal'):
        flipped[..., 1] = h - bboxes[..., 3]
        flipped[..., 3] = h - bboxes[..., 1]
    return flipped


def imflip(img: np.ndarray, direction: str) -> np.ndarray:
    """Flip an (H, W[, C]) image; returns a contiguous copy."""
    if direction not in DIRECTIONS:
        raise ValueError(f'flip direction must be one of {DIRECTIONS}, got {direction!r}')
    if img.dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64) and (
            img.ndim == 2 or img.ndim == 3 and img.shape[2] <= 4):
        import cv2  # several times faster than copying a negative-stride numpy view
        out = cv2.flip(img, {'horizontal': 1, 'vertical': 0, 'diagonal': -1}[direction])
        return out[..., None] if img.ndim == 3 and out.ndim == 2 else out
    axes = {'horizontal': (1,), 'vertical': (0,), 'diagonal': (0, 1)}[direction]
    return np.ascontiguousarray(np.flip(img, axis=axes))


@TRANSFORMS.register_module()
class RandomFlip(BaseTransform):
    """Randomly flip the image and its boxes.

    Reads: ``img``, ``img_shape``, ``gt_bboxes`` / ``gt_masks`` (optional). Writes: ``img``, ``gt_bboxes``
    (float32 (N, 4) xyxy in the flipped image), ``gt_masks`` (the mask structure's ``flip(direction)``),
    ``flip`` (bool), ``flip_direction`` (str or None).

    The direction is drawn with numpy's global RNG (seeded per worker by the dataloader):

    * ``prob`` float, ``direction`` str: flip in that direction with probability ``prob``;
    * ``prob`` float, ``direction`` list: flip with probability ``prob``, direction uniform over the list;
    * ``prob`` list, ``direction`` list (same length): direction ``i`` with probability ``prob[i]``,
      no flip with probability ``1 - sum(prob)``.

    Args:
        prob: flip probability (see above), in [0, 1].
        direction: ``'horizontal'``, ``'vertical'``, ``'diagonal'`` or a list of them.

    Raises:
        ValueError: a probability outside [0, 1], probabilities summing above 1, an unknown direction, or
            ``prob`` / ``direction`` lists of different length.
    """

    def __init__(self, prob: float | Sequence[float] = 0.5,
                 direction: str | Sequence[str] = 'horizontal') -> None:
        directions = [direction] if isinstance(direction, str) else list(direction)
        bad = [d for d in directions if d not in DIRECTIONS]
        if bad or not directions:
            raise ValueError(f'RandomFlip: direction must be one of {DIRECTIONS} or a list of them, '
                             f'got {direction!r}')
        if isinstance(prob, (int, float)):
            if not 0 <= prob <= 1:
                raise ValueError(f'RandomFlip: prob must be in [0, 1], got {prob}')
            probs = [float(prob) / len(directions)] * len(directions)
        else:
            probs = [float(p) for p in prob]
            if len(probs) != len(directions):
                raise ValueError(f'RandomFlip: {len(probs)} probabilities for {len(directions)} directions')
            if any(p < 0 for p in probs) or sum(probs) > 1 + 1e-6:
                raise ValueError(f'RandomFlip: probabilities must be >= 0 and sum to <= 1, got {probs}')
        self.prob = prob
        self.direction = direction
        self._choices: list[str | None] = directions + [None]
        self._probs = probs + [max(0.0, 1.0 - sum(probs))]

    def _choose_direction(self) -> str | None:
        r = np.random.random_sample()
        acc = 0.0
        for d, p in zip(self._choices, self._probs):
            acc += p
            if r < acc:
                return d
        return None

    def transform(self, results: dict) -> dict:
        """Draw a direction and flip ``results`` in place (see the class docstring for the keys)."""
        direction = self._choose_direction()
        results['flip'] = direction is not None
        results['flip_direction'] = direction
        if direction is None:
            return results
        if 'img' in results:
            results['img'] = imflip(results['img'], direction)
        if results.get('gt_bboxes') is not None:
            shape = results.get('img_shape', results['img'].shape[:2] if 'img' in results else None)
            if shape is None:
                raise KeyError('RandomFlip: need "img_shape" (or "img") to flip gt_bboxes')
            results['gt_bboxes'] = bbox_flip(np.asarray(results['gt_bboxes'], dtype=np.float32), shape,
                                             direction)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].flip(direction)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.direction!r})'
