"""``PackDetInputs``: the last transform of a detection pipeline (arrays -> model inputs + DetDataSample).

Reference: MMDetection 3.x ``mmdet.datasets.transforms.PackDetInputs`` (behaviour), re-implemented.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS
from kiln.structures import InstanceData

from ...structures import DetDataSample

_MAPPING = {'gt_bboxes': 'bboxes', 'gt_bboxes_labels': 'labels'}


@TRANSFORMS.register_module()
class PackDetInputs(BaseTransform):
    """Pack the pipeline ``results`` into ``dict(inputs, data_samples)``.

    Reads: ``img`` ((H, W, C) or (H, W) numpy), ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_masks``,
    ``gt_ignore_flags``, ``instances`` and every key of ``meta_keys`` present in ``results``.

    Writes a new dict:

    * ``inputs``: contiguous ``torch.Tensor`` (C, H, W), same dtype as ``img`` (uint8, BGR after
      ``LoadImageFromFile``);
    * ``data_samples``: :class:`DetDataSample` with ``gt_instances`` (``bboxes`` float32 (N, 4) xyxy,
      ``labels`` int64 (N,), and ``masks``: the ``gt_masks`` structure (``BitmapMasks`` / ``PolygonMasks``,
      not a tensor, as in MMDetection) when present) for the instances whose ``gt_ignore_flags`` is False,
      ``ignored_instances`` with the same fields for the others, and metainfo = the ``meta_keys`` found in ``results`` plus ``instances``
      (the dataset's original annotations, used by ``CocoMetric`` when it has no ``ann_file``) when present.

    Args:
        meta_keys: results keys copied into the data sample's metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                    'scale_factor', 'flip', 'flip_direction')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Return ``dict(inputs=Tensor (C, H, W), data_samples=DetDataSample)`` (see the class docstring)."""
        packed: dict = {}
        if 'img' in results:
            img = results['img']
            if img.ndim < 3:
                img = img[..., None]
            packed['inputs'] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

        sample = DetDataSample()
        gt, ignored = InstanceData(), InstanceData()
        flags = results.get('gt_ignore_flags')
        if flags is not None:
            flags = np.asarray(flags, dtype=bool).reshape(-1)
            keep, drop = np.flatnonzero(~flags), np.flatnonzero(flags)
        for key, field in _MAPPING.items():
            if results.get(key) is None:
                continue
            value = np.asarray(results[key])
            value = value.astype(np.float32 if key == 'gt_bboxes' else np.int64, copy=False)
            if flags is not None:
                if len(flags) != len(value):
                    raise ValueError(f'PackDetInputs: {key} has {len(value)} rows but gt_ignore_flags has '
                                     f'{len(flags)} ({results.get("img_path", "")})')
                setattr(gt, field, torch.from_numpy(np.ascontiguousarray(value[keep])))
                setattr(ignored, field, torch.from_numpy(np.ascontiguousarray(value[drop])))
            else:
                setattr(gt, field, torch.from_numpy(np.ascontiguousarray(value)))
        masks = results.get('gt_masks')
        if masks is not None:
            # the mask structure itself (BitmapMasks / PolygonMasks), indexed like the boxes
            if flags is not None:
                if len(flags) != len(masks):
                    raise ValueError(f'PackDetInputs: gt_masks has {len(masks)} masks but gt_ignore_flags has '
                                     f'{len(flags)} ({results.get("img_path", "")})')
                gt.masks = masks[keep]
                ignored.masks = masks[drop]
            else:
                gt.masks = masks
        sample.gt_instances = gt
        sample.ignored_instances = ignored

        meta = {k: results[k] for k in self.meta_keys if k in results}
        if 'instances' in results:
            meta['instances'] = copy.deepcopy(results['instances'])
        sample.set_metainfo(meta)
        packed['data_samples'] = sample
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
