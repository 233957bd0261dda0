"""``FilterAnnotations``: drop instances whose box (or mask) is too small.

Reference: MMDetection 3.3 ``mmdet.datasets.transforms.FilterAnnotations`` (behaviour), re-implemented.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

from .geometric import get_boxes, select_instances


@TRANSFORMS.register_module()
class FilterAnnotations(BaseTransform):
    """Keep the instances whose box is wider than ``min_gt_bbox_wh[0]`` and taller than ``min_gt_bbox_wh[1]``
    (strictly, pixels; ``by_box``) and / or whose mask has at least ``min_gt_mask_area`` pixels (``by_mask``).

    Boxes, labels, ignore flags and masks are filtered together. When no instance passes, MMDetection's flag
    ``keep_empty`` decides (its name reads backwards): ``keep_empty=True`` returns ``None`` (the dataset draws
    another sample in training), ``keep_empty=False`` keeps the image with zero instances. An image that had no
    instances to begin with is returned unchanged.

    Reads / writes: ``gt_bboxes`` (required), ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks``.

    Args:
        min_gt_bbox_wh: (min width, min height) in pixels.
        min_gt_mask_area: minimum mask area in pixels (``masks.areas``).
        by_box: filter by box size.
        by_mask: filter by mask area (needs ``gt_masks``).
        keep_empty: see above.

    Raises:
        ValueError: neither ``by_box`` nor ``by_mask``.
        KeyError: no ``gt_bboxes``, or ``by_mask`` without ``gt_masks``.
    """

    def __init__(self, min_gt_bbox_wh: Sequence[float] = (1, 1), min_gt_mask_area: int = 1, by_box: bool = True,
                 by_mask: bool = False, keep_empty: bool = True) -> None:
        if not (by_box or by_mask):
            raise ValueError('FilterAnnotations: at least one of by_box and by_mask must be True')
        self.min_gt_bbox_wh = tuple(min_gt_bbox_wh)
        self.min_gt_mask_area = min_gt_mask_area
        self.by_box = by_box
        self.by_mask = by_mask
        self.keep_empty = keep_empty

    def transform(self, results: dict) -> dict | None:
        """Filter ``results`` in place, or return ``None`` (see the class docstring)."""
        if 'gt_bboxes' not in results:
            raise KeyError(f'FilterAnnotations: results of {results.get("img_path", "?")} has no "gt_bboxes"; '
                           'put LoadAnnotations first')
        boxes = get_boxes(results, 'FilterAnnotations')
        if len(boxes) == 0:
            return results
        keep = np.ones(len(boxes), dtype=bool)
        if self.by_box:
            keep &= ((boxes[:, 2] - boxes[:, 0]) > self.min_gt_bbox_wh[0]) & \
                ((boxes[:, 3] - boxes[:, 1]) > self.min_gt_bbox_wh[1])
        if self.by_mask:
            if results.get('gt_masks') is None:
                raise KeyError(f'FilterAnnotations: by_mask=True but results of {results.get("img_path", "?")} '
                               'has no "gt_masks" (LoadAnnotations(with_mask=True))')
            keep &= np.asarray(results['gt_masks'].areas) >= self.min_gt_mask_area
        if not keep.any() and self.keep_empty:
            return None
        return select_instances(results, keep)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_gt_bbox_wh={self.min_gt_bbox_wh}, '
                f'min_gt_mask_area={self.min_gt_mask_area}, by_box={self.by_box}, by_mask={self.by_mask}, '
                f'keep_empty={self.keep_empty})')
