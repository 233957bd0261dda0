"""``DetVisualizationHook``: draw ground truth and predictions of val/test images.

Reference: MMDetection 3.x ``mmdet.engine.hooks.DetVisualizationHook`` (behaviour, config keys),
re-implemented.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from kiln.hooks import Hook
from kiln.registry import HOOKS
from kiln.structures import InstanceData

from ...datasets.file_io import get_bytes
from ...datasets.transforms.flip import bbox_flip
from ...datasets.transforms.loading import imfrombytes
from ...structures import DetDataSample
from ...structures.mask import BaseInstanceMasks, polygon_to_bitmap


def _decode_instance_mask(mask: Any, height: int, width: int) -> np.ndarray:
    """(height, width) bool array of one record's ``mask`` (COCO polygons, RLE dict or a binary array); an
    unreadable or missing mask is empty."""
    from pycocotools import mask as mask_util
    if mask is None:
        return np.zeros((height, width), dtype=bool)
    if isinstance(mask, dict):
        rle = mask_util.frPyObjects(dict(mask), height, width) if isinstance(mask.get('counts'), list) else mask
        out = mask_util.decode(rle).astype(bool)
        return out if out.shape == (height, width) else np.zeros((height, width), dtype=bool)
    if isinstance(mask, (list, tuple)):
        polys = [p for p in mask if len(p) >= 6 and len(p) % 2 == 0]
        return polygon_to_bitmap(polys, height, width)
    arr = np.asarray(mask.detach().cpu() if hasattr(mask, 'detach') else mask).astype(bool)
    return arr if arr.shape == (height, width) else np.zeros((height, width), dtype=bool)


def _masks_to_original(masks: Any, flip: bool, direction: str | None, ori_shape: Any) -> torch.Tensor:
    """Undo flip and resize of transformed-image masks: (N, h, w) bool tensor in the original image."""
    if isinstance(masks, BaseInstanceMasks):
        if flip and direction:
            masks = masks.flip(direction)
        if ori_shape is not None:
            masks = masks.resize((int(ori_shape[0]), int(ori_shape[1])))
        return torch.from_numpy(masks.to_ndarray().astype(bool))
    t = torch.as_tensor(masks).bool()
    if flip and direction:
        dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}[direction]
        t = t.flip(dims)
    if ori_shape is not None and tuple(t.shape[-2:]) != tuple(int(v) for v in ori_shape[:2]) and len(t):
        t = torch.nn.functional.interpolate(t[:, None].float(), size=(int(ori_shape[0]), int(ori_shape[1])),
                                            mode='nearest')[:, 0].bool()
    return t


def gt_to_original_image(sample: DetDataSample) -> DetDataSample:
    """A shallow copy of ``sample`` whose ``gt_instances`` / ``ignored_instances`` are in the pixel frame of the
    original image (the one read from ``img_path``, in which ``pred_instances`` are given).

    When the sample carries the dataset's original annotations (``instances`` metainfo, written by
    ``PackDetInputs``) they are used directly (``bbox`` xyxy, ``bbox_label``, and ``mask`` (COCO polygons / RLE)
    decoded to (N, H, W) bool ``masks`` at ``ori_shape``; ``ignore_flag=1`` ones go to ``ignored_instances``);
    this is right whatever the pipeline order (MMDetection test pipelines load the annotations after
    ``Resize``). Otherwise the boxes (and masks) are mapped back: undo ``flip`` within ``img_shape``, then
    divide by ``scale_factor`` (masks are resized to ``ori_shape``). The input sample is not modified.
    """
    out = sample.new()
    ori_shape = sample.get('ori_shape')
    if 'instances' in sample:
        instances = sample.instances
        with_masks = ori_shape is not None and any(i.get('mask') is not None for i in instances)
        for key, ignored in (('gt_instances', False), ('ignored_instances', True)):
            chosen = [i for i in instances if bool(i.get('ignore_flag', 0)) == ignored]
            inst = InstanceData(
                bboxes=torch.tensor([i['bbox'] for i in chosen], dtype=torch.float32).reshape(-1, 4),
                labels=torch.tensor([int(i['bbox_label']) for i in chosen], dtype=torch.int64))
            if with_masks:
                h, w = int(ori_shape[0]), int(ori_shape[1])
                inst.masks = torch.from_numpy(np.stack(
                    [_decode_instance_mask(i.get('mask'), h, w) for i in chosen]) if chosen else
                    np.zeros((0, h, w), dtype=bool))
            setattr(out, key, inst)
        return out
    flip = bool(sample.get('flip', False))
    direction = sample.get('flip_direction')
    img_shape = sample.get('img_shape')
    scale = sample.get('scale_factor')
    for key in ('gt_instances', 'ignored_instances'):
        if key not in sample or 'bboxes' not in sample.get(key):
            continue
        inst = sample.get(key)
        boxes = torch.as_tensor(inst.bboxes, dtype=torch.float32).clone()
        if flip and direction and img_shape is not None:
            boxes = bbox_flip(boxes, img_shape, direction)
        if scale is not None:
            boxes = boxes / boxes.new_tensor([scale[0], scale[1], scale[0], scale[1]])
        new = InstanceData(metainfo=inst.metainfo)
        for k, v in inst.items():
            if k == 'masks':
                v = _masks_to_original(v, flip, direction, ori_shape)
            setattr(new, k, boxes if k == 'bboxes' else v)
        setattr(out, key, new)
    return out


@HOOKS.register_module()
class DetVisualizationHook(Hook):
    """Draw detections with ``runner.visualizer`` (a :class:`~kiln.det.visualization.DetLocalVisualizer`).

    Nothing happens unless ``draw=True``. Then:

    * validation: every ``interval`` iterations (``runner.iter + batch_idx``, as in MMDetection) the first image
      of the batch is drawn (ground truth left, predictions with score > ``score_thr`` right) and sent to the
      visualizer's backends with ``add_image`` (name ``'val_img'``);
    * test: every image is drawn; with ``test_out_dir`` one PNG per image (``<img stem>.png``) is written there,
      otherwise the image goes to the backends (name ``'test_img'``). A relative ``test_out_dir`` is placed
      under ``runner.work_dir / runner.timestamp``.

    The image is read from the sample's ``img_path`` (Pillow, RGB), i.e. the original image: the ground-truth
    boxes and masks are mapped back to it (undo flip and resize) to line up with the predictions; instance
    masks (``gt_instances.masks``, ``pred_instances.masks`` of Mask R-CNN) are drawn as coloured overlays with
    contours (see :class:`~kiln.det.visualization.DetLocalVisualizer`).

    Args:
        draw: enable drawing.
        interval: validation drawing interval (iterations).
        score_thr: minimum score of drawn predictions.
        show: also show each image in a window (needs a display).
        wait_time: seconds to show each image.
        test_out_dir: folder of the test PNGs.
        backend_args: fsspec storage options to read remote images.
    """

    priority = 'NORMAL'

    def __init__(self, draw: bool = False, interval: int = 50, score_thr: float = 0.3, show: bool = False,
                 wait_time: float = 0., test_out_dir: str | None = None, backend_args: dict | None = None) -> None:
        if int(interval) < 1:
            raise ValueError(f'DetVisualizationHook: interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = int(interval)
        self.score_thr = score_thr
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.backend_args = backend_args
        self._test_index = 0
        self._out_dir: str | None = None

    def _read_rgb(self, img_path: str) -> Any:
        return imfrombytes(get_bytes(img_path, self.backend_args), 'color', channel_order='rgb')

    def _resolve_out_dir(self, runner: Any) -> str | None:
        if self.test_out_dir is None:
            return None
        if osp.isabs(self.test_out_dir):
            out = self.test_out_dir
        else:
            out = osp.join(str(runner.work_dir), str(runner.timestamp), self.test_out_dir)
        os.makedirs(out, exist_ok=True)
        return out

    def before_test(self, runner: Any) -> None:
        """Resolve and create ``test_out_dir`` for this run; restart the image counter."""
        self._test_index = 0
        self._out_dir = self._resolve_out_dir(runner) if self.draw else None

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Sequence[DetDataSample] | None = None) -> None:
        """Every ``interval`` iterations draw the first sample of ``outputs`` to the visualizer's backends."""
        if not self.draw or not outputs:
            return
        total_curr_iter = runner.iter + batch_idx
        if total_curr_iter % self.interval != 0:
            return
        sample = outputs[0]
        img_path = sample.img_path
        runner.visualizer.add_datasample(
            osp.basename(img_path) if self.show else 'val_img', self._read_rgb(img_path),
            data_sample=gt_to_original_image(sample), show=self.show, wait_time=self.wait_time,
            pred_score_thr=self.score_thr, step=total_curr_iter)

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Sequence[DetDataSample] | None = None) -> None:
        """Draw every sample of ``outputs``: one PNG each in ``test_out_dir``, or to the backends."""
        if not self.draw or not outputs:
            return
        if self.test_out_dir is not None and self._out_dir is None:
            self._out_dir = self._resolve_out_dir(runner)
        for sample in outputs:
            self._test_index += 1
            img_path = sample.img_path
            out_file = None
            if self._out_dir is not None:
                out_file = osp.join(self._out_dir, Path(img_path).stem + '.png')
            runner.visualizer.add_datasample(
                osp.basename(img_path) if self.show else 'test_img', self._read_rgb(img_path),
                data_sample=gt_to_original_image(sample), show=self.show, wait_time=self.wait_time,
                pred_score_thr=self.score_thr, out_file=out_file, step=self._test_index)
