"""``DetDataPreprocessor``: batch images for detectors and record the batch/pad shapes in the data samples.

Reference: MMDetection 3.x ``mmdet.models.data_preprocessors.DetDataPreprocessor`` (behaviour), re-implemented
on ``kiln.model.ImgDataPreprocessor``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kiln.model import ImgDataPreprocessor
from kiln.registry import MODELS


@MODELS.register_module()
class DetDataPreprocessor(ImgDataPreprocessor):
    """Image batching for detection.

    Runs :class:`kiln.model.ImgDataPreprocessor` (uint8 moved to the device first, then float32, channel swap,
    ``(x - mean) / std``, bottom/right padding to a multiple of ``pad_size_divisor``, stacking) and then sets,
    in each data sample's metainfo:

    * ``batch_input_shape``: (h, w) of the padded batch tensor (same for all samples);
    * ``pad_shape``: (h, w) of this image padded on its own to a multiple of ``pad_size_divisor``.

    In training, each of ``batch_augments`` (modules built from ``MODELS`` configs) is then called as
    ``inputs, data_samples = aug(inputs, data_samples)``.

    Input: ``dict(inputs=list of uint8 (C, H, W) Tensors or (N, C, H, W), data_samples=list[DetDataSample])``.
    Output: ``dict(inputs=float32 (N, C, H_pad, W_pad), data_samples=list[DetDataSample])`` on the device.

    Args:
        mean, std, pad_size_divisor, pad_value, bgr_to_rgb, rgb_to_bgr, non_blocking: see
            :class:`kiln.model.ImgDataPreprocessor`.
        boxtype2tensor: accepted for MMDetection configs; kiln's boxes are plain tensors already.
        batch_augments: configs (or modules) of batch augmentations applied in training only.
        pad_mask: in training, pad each sample's ``gt_instances.masks`` (``BitmapMasks`` / ``PolygonMasks``) at
            the bottom / right to ``batch_input_shape`` (Mask R-CNN configs set this), see :meth:`pad_gt_masks`.
        mask_pad_value: value of the padded mask pixels (0 = background).
        pad_seg: in training, pad ``gt_sem_seg.sem_seg`` of samples that have one to ``batch_input_shape``.
        seg_pad_value: value of the padded semantic-map pixels (255 = ignore).
        channels_last: give the model its batch in ``torch.channels_last`` memory format (NHWC strides; same
            shape and values), which the convolutions, norms and activations then keep. ``'auto'`` (default):
            on for a batch on the CPU, off elsewhere (not measured on GPUs); ``True`` / ``False`` force it. On
            this project's CPU (AVX2, oneDNN; 1 thread, process CPU time, R50-FPN detectors) the channels_last
            step took 0.85-0.99 of the NCHW one in training and 0.92-0.95 at inference (benchmarks/README.md,
            "kiln vs torchvision detectors", 2026-12-06). Outputs agree with the NCHW batch within float32 rounding.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pad_size_divisor: int = 1, pad_value: float = 0, pad_mask: bool = False,
                 mask_pad_value: int = 0, pad_seg: bool = False, seg_pad_value: int = 255,
                 bgr_to_rgb: bool = False, rgb_to_bgr: bool = False, boxtype2tensor: bool = True,
                 non_blocking: bool = False, batch_augments: Sequence[dict | nn.Module] | None = None,
                 channels_last: bool | str = 'auto') -> None:
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor, pad_value=pad_value,
                         bgr_to_rgb=bgr_to_rgb, rgb_to_bgr=rgb_to_bgr, non_blocking=non_blocking)
        self.pad_mask = pad_mask
        self.mask_pad_value = mask_pad_value
        self.pad_seg = pad_seg
        self.seg_pad_value = seg_pad_value
        self.boxtype2tensor = boxtype2tensor
        if not isinstance(channels_last, bool) and channels_last != 'auto':
            raise TypeError(f"DetDataPreprocessor channels_last must be True, False or 'auto', got {channels_last!r}")
        self.channels_last = channels_last
        self.batch_augments = None if batch_augments is None else nn.ModuleList(
            [MODELS.build(aug) if isinstance(aug, dict) else aug for aug in batch_augments])

    def _get_pad_shape(self, data: dict) -> list[tuple[int, int]]:
        """(h, w) of every image padded on its own to a multiple of ``pad_size_divisor``."""
        inputs = data['inputs']
        d = self.pad_size_divisor
        if isinstance(inputs, torch.Tensor):
            h, w = inputs.shape[-2:]
            return [(math.ceil(h / d) * d, math.ceil(w / d) * d)] * inputs.shape[0]
        return [(math.ceil(t.shape[-2] / d) * d, math.ceil(t.shape[-1] / d) * d) for t in inputs]

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """Batch ``data`` (see the class docstring) and fill ``batch_input_shape`` / ``pad_shape``."""
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError("DetDataPreprocessor expects a dict with key 'inputs'")
        pad_shapes = self._get_pad_shape(data)
        data = super().forward(data, training=training)
        inputs, data_samples = data['inputs'], data.get('data_samples')
        if data_samples is not None:
            batch_input_shape = tuple(inputs.shape[-2:])
            for sample, pad_shape in zip(data_samples, pad_shapes):
                sample.set_metainfo({'batch_input_shape': batch_input_shape, 'pad_shape': pad_shape})
            if self.pad_mask and training:
                self.pad_gt_masks(data_samples)
            if self.pad_seg and training:
                self.pad_gt_sem_seg(data_samples)
        if training and self.batch_augments is not None:
            for aug in self.batch_augments:
                inputs, data_samples = aug(inputs, data_samples)
        channels_last = (inputs.device.type == 'cpu') if self.channels_last == 'auto' else self.channels_last
        if channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return {'inputs': inputs, 'data_samples': data_samples}

    def pad_gt_masks(self, batch_data_samples: Sequence) -> None:
        """Pad each sample's ``gt_instances.masks`` (bottom / right) to its ``batch_input_shape`` with
        ``mask_pad_value``, in place (MMDetection's ``pad_gt_masks``). Samples without masks are skipped."""
        for sample in batch_data_samples:
            gt = sample.get('gt_instances')
            if gt is None or 'masks' not in gt:
                continue
            gt.masks = gt.masks.pad(sample.batch_input_shape, pad_val=self.mask_pad_value)

    def pad_gt_sem_seg(self, batch_data_samples: Sequence) -> None:
        """Pad each sample's ``gt_sem_seg.sem_seg`` ((1, H, W) or (H, W) tensor) bottom / right to its
        ``batch_input_shape`` with ``seg_pad_value``, in place. Samples without ``gt_sem_seg`` are skipped."""
        for sample in batch_data_samples:
            seg_data = sample.get('gt_sem_seg')
            if seg_data is None:
                continue
            seg = seg_data.sem_seg
            h, w = seg.shape[-2:]
            pad_h, pad_w = sample.batch_input_shape
            seg_data.sem_seg = F.pad(seg, (0, max(pad_w - w, 0), 0, max(pad_h - h, 0)), mode='constant',
                                     value=self.seg_pad_value)
