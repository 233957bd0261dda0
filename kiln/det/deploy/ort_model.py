"""``ORTDetector``: run a detector exported by :func:`kiln.det.deploy.export_onnx` in onnxruntime.

The wrapper needs only numpy, OpenCV and onnxruntime (no torch): it reads the preprocessing from the file's
metadata, resizes and pads the image like the config's test pipeline, runs the graph (post-processing included)
and maps the boxes back to the original image; for Mask R-CNN it pastes the per-box mask probabilities into the
image (bilinear, the same sampling as ``FCNMaskHead``'s ``_do_paste_mask``).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np

__all__ = ['ORTDetector', 'paste_masks']


def _resized_size(w: int, h: int, meta: dict) -> tuple[int, int]:
    """(new_w, new_h) of an image of (w, h): MMCV's keep-ratio rule with ``resize_scale`` (long edge <= max(scale),
    short edge <= min(scale), sizes rounded half up) or the exact ``resize_scale`` without ``keep_ratio``; if the
    result does not fit the input canvas (H, W) it is shrunk, keeping the ratio, until it does."""
    in_h, in_w = meta['input_size']
    scale = meta.get('resize_scale') or [in_w, in_h]
    if meta.get('keep_ratio', True):
        factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
        new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    else:
        new_w, new_h = int(scale[0]), int(scale[1])
    if new_w > in_w or new_h > in_h:
        factor = min(in_w / w, in_h / h)
        new_w, new_h = min(int(w * factor + 0.5), in_w), min(int(h * factor + 0.5), in_h)
    return new_w, new_h


def _interp_matrix(centres: np.ndarray, lo: float, hi: float, size: int) -> np.ndarray:
    """(len(centres), size) bilinear weights sampling a ``size``-long axis spanning [lo, hi] at ``centres``, with
    zero padding outside (``grid_sample(align_corners=False, padding_mode='zeros')``)."""
    extent = hi - lo
    if extent == 0 or not math.isfinite(extent):
        pos = np.full_like(centres, (size - 1) / 2.0)  # zero-size box: the mask centre, as the reference
    else:
        pos = (centres - lo) / extent * size - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    out = np.zeros((len(centres), size), dtype=np.float32)
    rows = np.arange(len(centres))
    for idx, weight in ((i0, 1.0 - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < size)
        out[rows[ok], idx[ok]] += weight[ok]
    return out


def paste_masks(masks: np.ndarray, boxes: np.ndarray, img_h: int, img_w: int,
                threshold: float = 0.5) -> np.ndarray:
    """Paste box-relative mask probabilities into an image.

    Args:
        masks: float (K, M, M) probabilities.
        boxes: float (K, 4) xyxy pixels of the target image.
        img_h, img_w: target image size.
        threshold: foreground where the pasted probability is >= it; < 0 returns uint8 soft masks 0..255.

    Returns:
        bool (K, img_h, img_w) (uint8 with ``threshold < 0``). Each pixel centre is mapped into its box and the
        mask sampled bilinearly with zero padding (Detectron2 ``paste_masks_in_image`` / MMDetection
        ``_do_paste_mask`` semantics), computed as ``Ay @ mask @ Ax.T`` since bilinear sampling is separable.
    """
    dtype = bool if threshold >= 0 else np.uint8
    out = np.zeros((len(masks), img_h, img_w), dtype=dtype)
    m_h, m_w = masks.shape[-2:]
    for i, (mask, (x0, y0, x1, y1)) in enumerate(zip(masks, boxes)):
        c0 = max(int(math.floor(x0)) - 1, 0)
        r0 = max(int(math.floor(y0)) - 1, 0)
        c1 = min(int(math.ceil(x1)) + 1, img_w)
        r1 = min(int(math.ceil(y1)) + 1, img_h)
        if c1 <= c0 or r1 <= r0:
            continue
        ay = _interp_matrix(np.arange(r0, r1, dtype=np.float32) + 0.5, float(y0), float(y1), m_h)
        ax = _interp_matrix(np.arange(c0, c1, dtype=np.float32) + 0.5, float(x0), float(x1), m_w)
        pasted = ay @ mask.astype(np.float32) @ ax.T
        out[i, r0:r1, c0:c1] = pasted >= threshold if threshold >= 0 else (pasted * 255).astype(np.uint8)
    return out


class ORTDetector:
    """Run an exported kiln detector with onnxruntime on BGR images.

    Example::

        det = ORTDetector('work_dirs/fcos/fcos.onnx')
        result = det('data/bccd/JPEGImages/BloodImage_00000.jpg')
        result['bboxes'], result['scores'], result['labels'], det.classes

    Args:
        onnx_path: file written by ``kiln export`` / :func:`kiln.det.deploy.export_onnx`.
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        num_threads: ``intra_op_num_threads`` of the session (default: onnxruntime's choice).

    Attributes:
        meta: the decoded ``metadata_props`` (see :func:`kiln.det.deploy.onnx_export.export_metadata`).
        classes: class names; input_size: (H, W); dynamic_batch: whether the graph takes batches > 1.

    Raises:
        FileNotFoundError: ``onnx_path`` does not exist. ValueError: the file has no kiln metadata.
    """

    def __init__(self, onnx_path: str | os.PathLike, providers: Sequence[str] | None = None,
                 num_threads: int | None = None) -> None:
        import onnxruntime as ort
        path = os.fspath(onnx_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ORTDetector: ONNX file '{path}' does not exist")
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]
        self.session = ort.InferenceSession(path, sess_options=options, providers=list(providers))
        raw = self.session.get_modelmeta().custom_metadata_map
        if 'input_size' not in raw:
            raise ValueError(f"ORTDetector: '{path}' has no kiln metadata (input_size); export it with kiln export")
        self.meta: dict[str, Any] = {k: json.loads(v) for k, v in raw.items()}
        self.classes: tuple[str, ...] = tuple(self.meta.get('classes') or ())
        self.input_size: tuple[int, int] = tuple(int(v) for v in self.meta['input_size'])
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.dynamic_batch = not isinstance(batch_dim, int)

    # ------------------------------------------------------------------ preprocessing
    def preprocess(self, img: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, dict]:
        """Load (path) or take a BGR uint8 (H, W, 3) array, resize it as the test pipeline (see
        :func:`_resized_size`) with ``cv2.resize`` (bilinear), pad it bottom / right with zeros to the input size.

        Returns:
            ``(uint8 (H_in, W_in, 3), meta)`` with ``img_shape`` (h, w) of the resized image, ``ori_shape`` and
            ``scale_factor`` (w_scale, h_scale) = resized / original size.

        Raises:
            FileNotFoundError / ValueError: an unreadable file or a non-image array.
        """
        import cv2
        if isinstance(img, (str, os.PathLike)):
            path = os.fspath(img)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"ORTDetector: image '{path}' does not exist")
            arr = cv2.imread(path, cv2.IMREAD_COLOR)
            if arr is None:
                raise ValueError(f"ORTDetector: cannot decode image '{path}'")
        else:
            arr = np.asarray(img)
        if arr.ndim == 2:
            arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f'ORTDetector: expected a BGR image (H, W, 3), got shape {arr.shape}')
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        h, w = arr.shape[:2]
        new_w, new_h = _resized_size(w, h, self.meta)
        resized = arr if (new_w, new_h) == (w, h) else cv2.resize(arr, (new_w, new_h),
                                                                  interpolation=cv2.INTER_LINEAR)
        in_h, in_w = self.input_size
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = resized
        return canvas, dict(img_shape=(new_h, new_w), ori_shape=(h, w), scale_factor=(new_w / w, new_h / h))

    # ------------------------------------------------------------------ inference
    def run(self, images: np.ndarray, img_shapes: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on preprocessed inputs: uint8 (N, H, W, 3) and int64 (N, 2); returns the raw outputs
        (``boxes`` (N, K, 4) input pixels, ``scores``, ``labels`` (-1 = padding)[, ``masks`` (N, K, M, M)])."""
        outs = self.session.run(None, {'image': np.ascontiguousarray(images, dtype=np.uint8),
                                       'img_shape': np.asarray(img_shapes, dtype=np.int64)})
        return dict(zip(self.output_names, outs))

    def __call__(self, inputs: Any, batch_size: int = 1) -> Any:
        """Detections of one image (path or BGR array) -> dict, or of a list of them -> list of dicts.

        Each dict: ``bboxes`` float32 (K, 4) xyxy pixels of the original image, ``scores`` float32 (K,),
        ``labels`` int64 (K,), ``label_names`` list[str], and for Mask R-CNN ``masks`` bool (K, h, w) of the
        original image. ``batch_size`` > 1 needs a file exported with ``--dynamic-batch``.
        """
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        if batch_size > 1 and not self.dynamic_batch:
            raise ValueError('ORTDetector: batch_size > 1 needs a model exported with --dynamic-batch')
        results = []
        for start in range(0, len(items), batch_size):
            prepared = [self.preprocess(item) for item in items[start:start + batch_size]]
            raw = self.run(np.stack([p[0] for p in prepared]), np.array([p[1]['img_shape'] for p in prepared]))
            results.extend(self.postprocess(raw, i, p[1]) for i, p in enumerate(prepared))
        return results[0] if single else results

    def postprocess(self, raw: dict[str, np.ndarray], index: int, img_meta: dict) -> dict[str, Any]:
        """Drop the padding of image ``index`` of ``raw``, divide the boxes by ``scale_factor`` and paste the
        masks into the original image (threshold ``mask_thr_binary`` from the metadata)."""
        keep = raw['labels'][index] >= 0
        sw, sh = img_meta['scale_factor']
        boxes = raw['boxes'][index][keep] / np.array([sw, sh, sw, sh], dtype=np.float32)
        labels = raw['labels'][index][keep].astype(np.int64)
        out: dict[str, Any] = dict(bboxes=boxes.astype(np.float32), scores=raw['scores'][index][keep],
                                   labels=labels,
                                   label_names=[self.classes[i] if i < len(self.classes) else str(i)
                                                for i in labels.tolist()])
        if 'masks' in raw:
            h, w = img_meta['ori_shape']
            out['masks'] = paste_masks(raw['masks'][index][keep], boxes, h, w,
                                       float(self.meta.get('mask_thr_binary', 0.5)))
        return out
