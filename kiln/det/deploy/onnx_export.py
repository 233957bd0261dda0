"""Export kiln detectors (FCOS, RetinaNet, Faster R-CNN, Mask R-CNN) to ONNX with the post-processing inside.

Exporter choice: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript tracer). With torch 2.14 the dynamo
exporter (``dynamo=True``, the default) stops in ``torch.export`` on the data-dependent guard of
``torchvision.ops.batched_nms`` (``boxes.numel() == 0`` on a size that depends on the score threshold), while the
tracer records ``torchvision.ops.nms`` as ONNX ``NonMaxSuppression`` (torchvision registers that symbolic) and
``torchvision.ops.roi_align`` as ``RoiAlign``, and the graph runs in onnxruntime with the same numbers as
PyTorch (see ``tests/test_det/test_deploy``).

The exported graph (:class:`DetectorExportModule`):

* inputs: ``image`` uint8 (N, H, W, 3) **BGR** (as ``cv2.imread`` gives it) resized and padded at the bottom /
  right to the fixed input size (H, W); ``img_shape`` int64 (N, 2): the ``(h, w)`` of the resized image inside
  the padded one. The graph swaps the channels (``bgr_to_rgb``), normalises with the config's mean / std and sets
  the padding to the data preprocessor's ``pad_value`` (0), exactly as ``DetDataPreprocessor`` does;
* post-processing as the PyTorch ``predict`` (MMDetection semantics): per-level top-``nms_pre``, ``score_thr``,
  ``min_bbox_size``, box decoding clipped to ``img_shape``, class-aware NMS (``torchvision.ops.batched_nms`` ->
  ONNX ``NonMaxSuppression``), ``max_per_img``; for the two-stage detectors the RPN (per-level NMS) and the RoI
  head (per-class NMS) run in the graph too;
* outputs, padded to K = ``max_per_img`` per image and sorted by decreasing score: ``boxes`` float32 (N, K, 4)
  xyxy pixels of the network input, ``scores`` float32 (N, K), ``labels`` int64 (N, K) (-1 marks padding, with
  score 0 and a zero box) and for Mask R-CNN ``masks`` float32 (N, K, M, M): the mask probabilities (sigmoid)
  of each detection's class in its box (M = 28 by default). Pasting the masks into the image and mapping the
  boxes back to the original image (divide by the resize factor) are done by
  :class:`kiln.det.deploy.ORTDetector`.

The file's ``metadata_props`` (see :func:`export_metadata`) carry what a runtime needs: class names, mean / std,
``bgr_to_rgb``, input size, resize rule, thresholds, output names and the kiln version; values are JSON strings.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms  # traced as ONNX NonMaxSuppression (torchvision's symbolic)

__all__ = ['DetectorExportModule', 'export_onnx', 'export_metadata', 'read_metadata', 'load_detector',
           'DEFAULT_OPSET']

DEFAULT_OPSET = 17
_NOT_KEPT = -2.0  # score of candidates removed by NMS (valid scores are >= 0)
_INVALID = -1.0  # score of candidates below the score threshold / too small (they only suppress each other)


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    return cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)


def _nms_topk(boxes: Tensor, scores: Tensor, groups: Tensor, valid: Tensor, num_groups: int, iou_thr: float,
              max_num: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per image, NMS within each group (class or level) and the ``max_num`` best survivors.

    Args:
        boxes: float (N, M, 4) xyxy; scores: float (N, M) >= 0; groups: int64 (N, M) in ``[0, num_groups)``;
        valid: bool (N, M) candidates that take part (others are dropped before NMS).

    Returns:
        ``(top_scores (N, K), top_index (N, K) into M, kept bool (N, K))`` with K = min(max_num, M), by decreasing
        score; ``kept`` is False on padding.
    """
    n, m = scores.shape[0], scores.shape[1]
    flat_valid = valid.reshape(-1)
    idx = flat_valid.nonzero().squeeze(1)
    img = torch.arange(n, device=scores.device)[:, None].expand(n, m).reshape(-1)
    ids = img * num_groups + groups.reshape(-1)
    flat_scores = scores.reshape(-1)
    kept = batched_nms(boxes.reshape(-1, 4)[idx], flat_scores[idx], ids[idx], float(iou_thr))
    kept_idx = idx[kept]
    buffer = torch.full_like(flat_scores, _NOT_KEPT).scatter(0, kept_idx, flat_scores[kept_idx]).reshape(n, m)
    k = m if max_num is None or max_num <= 0 else min(int(max_num), m)
    top, top_idx = buffer.topk(k, dim=1)
    return top, top_idx, top >= 0


def _gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    """x (N, M, ...) and idx (N, K) -> (N, K, ...)."""
    shape = idx.shape + x.shape[2:]
    expanded = idx.reshape(idx.shape[0], idx.shape[1], *([1] * (x.dim() - 2))).expand(shape)
    return x.gather(1, expanded)


def _clip(boxes: Tensor, img_hw: Tensor) -> Tensor:
    """boxes (N, M, 4k) xyxy clamped to [0, w] x [0, h] of each image (img_hw float (N, 2))."""
    h = img_hw[:, 0].reshape(-1, 1, 1)
    w = img_hw[:, 1].reshape(-1, 1, 1)
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    shape = boxes.shape
    b = boxes.reshape(shape[0], shape[1], -1, 4)
    x = torch.minimum(torch.maximum(b[..., 0::2], zero), w[..., None])
    y = torch.minimum(torch.maximum(b[..., 1::2], zero), h[..., None])
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1).reshape(shape)


class DetectorExportModule(nn.Module):
    """A kiln detector with its data preprocessing and post-processing as one traceable module.

    ``forward(image uint8 (N, H, W, 3) BGR, img_shape int64 (N, 2)) -> (boxes, scores, labels[, masks])``; see
    the module docstring for the shapes. The detector's own modules (backbone, neck, heads, coders, prior
    generators) are used; only the post-processing is re-written with fixed shapes so that it traces.

    Supported: single-stage detectors whose ``bbox_head`` is an ``AnchorHead`` / ``AnchorFreeHead`` subclass
    with the ``BaseDenseHead`` post-processing (FCOS, RetinaNet) and ``TwoStageDetector`` with an ``RPNHead``
    and a ``StandardRoIHead`` (Faster / Mask R-CNN).

    Raises:
        NotImplementedError: another detector layout (e.g. a RoI head with a shared head).
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model.eval()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        dp = model.data_preprocessor
        mean = getattr(dp, 'mean', None) if getattr(dp, '_enable_normalize', False) else None
        self.register_buffer('mean', (mean if mean is not None else torch.zeros(1, 1, 1)).reshape(1, -1, 1, 1)
                             .clone(), persistent=False)
        std = getattr(dp, 'std', None) if getattr(dp, '_enable_normalize', False) else None
        self.register_buffer('std', (std if std is not None else torch.ones(1, 1, 1)).reshape(1, -1, 1, 1)
                             .clone(), persistent=False)
        self.swap = bool(getattr(dp, '_channel_conversion', False))
        self.pad_value = float(getattr(dp, 'pad_value', 0) or 0)
        if getattr(model, 'bbox_head', None) is not None:
            self.kind = 'single_stage'
        elif getattr(model, 'rpn_head', None) is not None and getattr(model, 'roi_head', None) is not None:
            self.kind = 'two_stage'
            if getattr(model.roi_head, 'with_shared_head', False):
                raise NotImplementedError('ONNX export: RoI heads with a shared_head are not supported')
        else:
            raise NotImplementedError(f'ONNX export supports single-stage detectors (bbox_head) and two-stage '
                                      f'detectors with rpn_head and roi_head; got {type(model).__name__}')
        self.with_mask = self.kind == 'two_stage' and bool(getattr(model.roi_head, 'with_mask', False))

    # ------------------------------------------------------------------ preprocessing
    def preprocess(self, image: Tensor, img_shape: Tensor) -> Tensor:
        """uint8 (N, H, W, 3) BGR -> float32 (N, 3, H, W) as ``DetDataPreprocessor`` (swap, (x - mean) / std,
        ``pad_value`` outside ``img_shape``)."""
        x = image.permute(0, 3, 1, 2)
        if self.swap:
            x = x.flip(1)
        x = (x.float() - self.mean) / self.std
        h, w = self.input_size
        ys = torch.arange(h, device=x.device).reshape(1, h, 1)
        xs = torch.arange(w, device=x.device).reshape(1, 1, w)
        inside = (ys < img_shape[:, 0].reshape(-1, 1, 1)) & (xs < img_shape[:, 1].reshape(-1, 1, 1))
        return torch.where(inside[:, None], x, torch.full((), self.pad_value, dtype=x.dtype, device=x.device))

    def forward(self, image: Tensor, img_shape: Tensor) -> tuple[Tensor, ...]:
        x = self.preprocess(image, img_shape)
        img_hw = img_shape.to(x.dtype)
        feats = self.model.extract_feat(x)
        if self.kind == 'single_stage':
            return self._dense(feats, img_hw)
        return self._two_stage(feats, img_hw)

    # ------------------------------------------------------------------ one-stage
    def _dense(self, feats: Sequence[Tensor], img_hw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        head = self.model.bbox_head
        cfg = head.test_cfg
        outs = head(feats)
        cls_scores, bbox_preds = outs[0], outs[1]
        factors = outs[2] if len(outs) > 2 else None
        sizes = [(int(c.shape[-2]), int(c.shape[-1])) for c in cls_scores]  # fixed by the input size
        priors = head.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
        nms_pre = _cfg_get(cfg, 'nms_pre', -1)
        score_thr = float(_cfg_get(cfg, 'score_thr', 0.0) or 0.0)
        num_classes = head.cls_out_channels if head.use_sigmoid_cls else head.cls_out_channels - 1
        dim = head.bbox_coder.encode_size
        n = cls_scores[0].size(0)
        all_boxes, all_scores, all_labels, all_valid = [], [], [], []
        for lvl, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            cls = cls.permute(0, 2, 3, 1).reshape(n, -1, head.cls_out_channels)
            probs = cls.sigmoid() if head.use_sigmoid_cls else cls.softmax(-1)[..., :-1]
            reg = reg.permute(0, 2, 3, 1).reshape(n, -1, dim)
            num_priors = probs.shape[1]
            flat = probs.reshape(n, num_priors * num_classes)
            k = flat.shape[1] if nms_pre is None or nms_pre <= 0 else min(int(nms_pre), flat.shape[1])
            top, top_idx = flat.topk(k, dim=1)
            prior_idx = torch.div(top_idx, num_classes, rounding_mode='floor')
            labels = top_idx - prior_idx * num_classes
            lvl_priors = priors[lvl][prior_idx]  # (N, k, 2 or 4)
            boxes = head.bbox_coder.decode(lvl_priors.reshape(-1, lvl_priors.shape[-1]),
                                           _gather_rows(reg, prior_idx).reshape(-1, dim), max_shape=None)
            boxes = boxes.reshape(n, k, 4)
            valid = top > score_thr
            scores = top
            if factors is not None:
                factor = factors[lvl].permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
                scores = scores * factor.gather(1, prior_idx)
            all_boxes.append(boxes)
            all_scores.append(scores)
            all_labels.append(labels)
            all_valid.append(valid)
        boxes = torch.cat(all_boxes, 1)
        if getattr(head.bbox_coder, 'clip_border', True):
            boxes = _clip(boxes, img_hw)
        scores, labels, valid = torch.cat(all_scores, 1), torch.cat(all_labels, 1), torch.cat(all_valid, 1)
        min_size = _cfg_get(cfg, 'min_bbox_size', -1)
        if min_size is not None and min_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            valid = valid & (wh[..., 0] > min_size) & (wh[..., 1] > min_size)
        nms = _cfg_get(cfg, 'nms')
        iou_thr = _cfg_get(nms, 'iou_threshold', 0.5) if nms is not None else 1.0
        if nms is not None and _cfg_get(nms, 'class_agnostic', False):
            groups, num_groups = torch.zeros_like(labels), 1
        else:
            groups, num_groups = labels, num_classes
        top, idx, kept = _nms_topk(boxes, scores, groups, valid, num_groups, iou_thr,
                                   _cfg_get(cfg, 'max_per_img', -1))
        return self._pack(boxes, labels, top, idx, kept)

    @staticmethod
    def _pack(boxes: Tensor, labels: Tensor, top: Tensor, idx: Tensor, kept: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out_boxes = _gather_rows(boxes, idx) * kept[..., None].to(boxes.dtype)
        out_scores = torch.where(kept, top, torch.zeros_like(top))
        out_labels = torch.where(kept, labels.gather(1, idx), torch.full_like(idx, -1))
        return out_boxes, out_scores, out_labels

    # ------------------------------------------------------------------ two-stage
    def _proposals(self, feats: Sequence[Tensor], img_hw: Tensor) -> tuple[Tensor, Tensor]:
        """RPN proposals: (N, R, 4) xyxy input pixels and bool (N, R) (False: padding), R = ``max_per_img``."""
        rpn = self.model.rpn_head
        cfg = rpn.test_cfg
        cls_scores, bbox_preds = rpn(feats)
        sizes = [(int(c.shape[-2]), int(c.shape[-1])) for c in cls_scores]
        priors = rpn.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
        nms_pre = _cfg_get(cfg, 'nms_pre', -1)
        dim = rpn.bbox_coder.encode_size
        n = cls_scores[0].size(0)
        all_boxes, all_scores, all_levels = [], [], []
        for lvl, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            score = cls.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
            reg = reg.permute(0, 2, 3, 1).reshape(n, -1, dim)
            num = score.shape[1]
            if nms_pre is not None and 0 < nms_pre < num:
                score, order = score.topk(int(nms_pre), dim=1)
                reg = _gather_rows(reg, order)
                lvl_priors = priors[lvl][order]
            else:
                lvl_priors = priors[lvl][None].expand(n, num, priors[lvl].shape[-1])
            k = score.shape[1]
            boxes = rpn.bbox_coder.decode(lvl_priors.reshape(-1, lvl_priors.shape[-1]), reg.reshape(-1, dim),
                                          max_shape=None).reshape(n, k, 4)
            all_boxes.append(boxes)
            all_scores.append(score)
            all_levels.append(torch.full_like(score, lvl, dtype=torch.long))
        boxes = torch.cat(all_boxes, 1)
        if getattr(rpn.bbox_coder, 'clip_border', True):
            boxes = _clip(boxes, img_hw)
        scores, levels = torch.cat(all_scores, 1), torch.cat(all_levels, 1)
        valid = torch.ones_like(scores, dtype=torch.bool)
        min_size = _cfg_get(cfg, 'min_bbox_size', -1)
        if min_size is not None and min_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            valid = (wh[..., 0] > min_size) & (wh[..., 1] > min_size)
        nms = _cfg_get(cfg, 'nms')
        top, idx, kept = _nms_topk(boxes, scores, levels, valid, len(cls_scores),
                                   _cfg_get(nms, 'iou_threshold', 0.7), _cfg_get(cfg, 'max_per_img', -1))
        score_thr = _cfg_get(cfg, 'score_thr', -1)
        if score_thr is not None and score_thr > 0:
            kept = kept & (top > score_thr)
        return _gather_rows(boxes, idx) * kept[..., None].to(boxes.dtype), kept

    @staticmethod
    def _roi_feats(extractor: nn.Module, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """``SingleRoIExtractor`` without data-dependent indexing: every level pools every RoI and the RoI's own
        level is selected by a 0/1 mask (same values as pooling each RoI on its level only)."""
        feats = feats[:extractor.num_inputs]
        if len(feats) == 1:
            return extractor.roi_layers[0](feats[0], rois)
        levels = extractor.map_roi_levels(rois, len(feats))
        out = None
        for i, feat in enumerate(feats):
            pooled = extractor.roi_layers[i](feat, rois)
            pooled = pooled * (levels == i).to(pooled.dtype).reshape(-1, 1, 1, 1)
            out = pooled if out is None else out + pooled
        return out

    def _two_stage(self, feats: Sequence[Tensor], img_hw: Tensor) -> tuple[Tensor, ...]:
        roi_head = self.model.roi_head
        cfg = roi_head.test_cfg
        proposals, prop_valid = self._proposals(feats, img_hw)
        n, r = proposals.shape[0], proposals.shape[1]
        batch_idx = torch.arange(n, device=proposals.device, dtype=proposals.dtype)[:, None, None].expand(n, r, 1)
        rois = torch.cat([batch_idx, proposals], -1).reshape(-1, 5)
        bbox_feats = self._roi_feats(roi_head.bbox_roi_extractor, feats, rois)
        cls_score, bbox_pred = roi_head.bbox_head(bbox_feats)
        bbox_head = roi_head.bbox_head
        num_classes = bbox_head.num_classes
        probs = cls_score.softmax(-1)[:, :num_classes].reshape(n, r, num_classes)
        if bbox_pred is not None:
            boxes = bbox_head.bbox_coder.decode(rois[:, 1:], bbox_pred, max_shape=None)
            boxes = boxes.reshape(n, r, -1)
            if getattr(bbox_head.bbox_coder, 'clip_border', True):
                boxes = _clip(boxes, img_hw)
        else:
            boxes = _clip(proposals, img_hw)
        boxes = boxes.reshape(n, r, -1, 4).expand(n, r, num_classes, 4).reshape(n, r * num_classes, 4)
        scores = probs.reshape(n, r * num_classes)
        labels = torch.arange(num_classes, device=scores.device)[None, None].expand(n, r, num_classes)
        labels = labels.reshape(n, r * num_classes)
        score_thr = float(_cfg_get(cfg, 'score_thr', 0.0) or 0.0)
        valid = (scores > score_thr) & prop_valid[..., None].expand(n, r, num_classes).reshape(n, -1)
        nms = _cfg_get(cfg, 'nms')
        iou_thr = _cfg_get(nms, 'iou_threshold', 0.5) if nms is not None else 1.0
        if nms is not None and _cfg_get(nms, 'class_agnostic', False):
            groups, num_groups = torch.zeros_like(labels), 1
        else:
            groups, num_groups = labels, num_classes
        top, idx, kept = _nms_topk(boxes, scores, groups, valid, num_groups, iou_thr,
                                   _cfg_get(cfg, 'max_per_img', -1))
        out_boxes, out_scores, out_labels = self._pack(boxes, labels, top, idx, kept)
        if not self.with_mask:
            return out_boxes, out_scores, out_labels
        k = out_boxes.shape[1]
        det_idx = torch.arange(n, device=out_boxes.device, dtype=out_boxes.dtype)[:, None, None].expand(n, k, 1)
        mask_rois = torch.cat([det_idx, out_boxes], -1).reshape(-1, 5)
        mask_feats = self._roi_feats(roi_head.mask_roi_extractor, feats, mask_rois)
        mask_preds = roi_head.mask_head(mask_feats)  # (N * K, C or 1, M, M) logits
        if getattr(roi_head.mask_head, 'class_agnostic', False) or mask_preds.shape[1] == 1:
            chosen = mask_preds[:, 0]
        else:
            channel = out_labels.clamp(min=0).reshape(-1, 1, 1, 1).expand(-1, 1, *mask_preds.shape[-2:])
            chosen = mask_preds.gather(1, channel)[:, 0]
        masks = chosen.sigmoid().reshape(n, k, *mask_preds.shape[-2:]) * kept[..., None, None].to(chosen.dtype)
        return out_boxes, out_scores, out_labels, masks


# ---------------------------------------------------------------------- loading, metadata, export
def load_detector(config: Any, checkpoint: str | os.PathLike | None) -> tuple[nn.Module, Any, dict]:
    """Build the detector of ``config`` (path or Config) and load ``checkpoint`` (kiln / release / MMDetection
    file; None keeps the initial weights) through :class:`kiln.det.DetInferencer`; returns
    ``(model in eval mode on CPU, cfg, dataset_meta)``."""
    from kiln.det.apis import DetInferencer
    inferencer = DetInferencer(config, checkpoint, device='cpu', show_progress=False)
    return inferencer.model, inferencer.cfg, dict(inferencer.dataset_meta)


def _test_resize(cfg: Any) -> tuple[tuple[int, int] | None, bool]:
    """``(scale (w, h), keep_ratio)`` of the first ``Resize`` in the config's test pipeline ((None, True) if
    none)."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while isinstance(dataset, Mapping) and 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    pipeline = (dataset.get('pipeline') if isinstance(dataset, Mapping) else None) or cfg.get('test_pipeline') or []
    for step in pipeline:
        if step.get('type') == 'Resize' and step.get('scale') is not None:
            scale = step['scale']
            scale = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
            return (int(scale[0]), int(scale[1])), bool(step.get('keep_ratio', False))
    return None, True


def default_input_size(cfg: Any, divisor: int = 32) -> tuple[int, int]:
    """Input (H, W) for the config's test resize: keep-ratio scale (long, short) -> H = short, W = long (a
    landscape canvas), exact scale (w, h) -> (h, w); rounded up to ``divisor``. Raises ValueError when the test
    pipeline has no ``Resize`` with a ``scale``."""
    scale, keep_ratio = _test_resize(cfg)
    if scale is None:
        raise ValueError('the config\'s test pipeline has no Resize(scale=...): pass --img-size H W')
    if keep_ratio:
        h, w = min(scale), max(scale)
    else:
        w, h = scale
    return int(math.ceil(h / divisor) * divisor), int(math.ceil(w / divisor) * divisor)


def export_metadata(module: DetectorExportModule, cfg: Any, dataset_meta: Mapping[str, Any],
                    resize_scale: tuple[int, int] | None, keep_ratio: bool) -> dict[str, str]:
    """The ``metadata_props`` written into the ONNX file (every value a JSON string):

    ``kiln_version``, ``model_type`` (detector class), ``kind`` (single_stage / two_stage), ``classes``,
    ``mean`` / ``std`` (after the channel swap), ``bgr_to_rgb``, ``pad_value``, ``input_size`` [H, W],
    ``input_format`` ("uint8 NHWC BGR"), ``resize_scale`` [w, h] and ``keep_ratio`` (how a runtime resizes an
    image before padding it to ``input_size``), ``score_thr``, ``iou_threshold``, ``max_per_img``,
    ``outputs`` (names), and for masks ``mask_thr_binary``.
    """
    import kiln
    model = module.model
    head_cfg = model.bbox_head.test_cfg if module.kind == 'single_stage' else model.roi_head.test_cfg
    nms = _cfg_get(head_cfg, 'nms')
    outputs = ['boxes', 'scores', 'labels'] + (['masks'] if module.with_mask else [])
    meta = dict(
        kiln_version=kiln.__version__,
        model_type=type(model).__name__,
        kind=module.kind,
        classes=[str(c) for c in (dataset_meta.get('classes') or [])],
        mean=[float(f'{v:.6g}') for v in module.mean.flatten().tolist()],
        std=[float(f'{v:.6g}') for v in module.std.flatten().tolist()],
        bgr_to_rgb=module.swap,
        pad_value=module.pad_value,
        input_size=list(module.input_size),
        input_format='uint8 NHWC BGR',
        resize_scale=list(resize_scale) if resize_scale is not None else None,
        keep_ratio=bool(keep_ratio),
        score_thr=float(_cfg_get(head_cfg, 'score_thr', 0.0) or 0.0),
        iou_threshold=_cfg_get(nms, 'iou_threshold'),
        max_per_img=_cfg_get(head_cfg, 'max_per_img', -1),
        outputs=outputs,
    )
    if module.with_mask:
        meta['mask_thr_binary'] = float(_cfg_get(head_cfg, 'mask_thr_binary', 0.5))
    return {k: json.dumps(v) for k, v in meta.items()}


def read_metadata(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """The decoded ``metadata_props`` of an exported file (``onnx.load`` without the weights)."""
    import onnx
    proto = onnx.load(os.fspath(onnx_path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}


def export_onnx(config: Any, checkpoint: str | os.PathLike | None, out_file: str | os.PathLike,
                img_size: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
                model: nn.Module | None = None,
                check: bool = True) -> dict[str, Any]:
    """Export a detector to ``out_file`` (ONNX).

    Args:
        config: config path or :class:`kiln.config.Config`.
        checkpoint: weights (see :func:`load_detector`); ignored when ``model`` is given.
        out_file: the ``.onnx`` file to write (parent folders are created).
        img_size: network input (H, W); default :func:`default_input_size` of the config. With ``img_size`` a
            runtime resizes images to fit (W, H) (keep ratio) before padding.
        opset: ONNX opset (>= 16 for ``RoiAlign`` with half-pixel coordinates; default 17).
        dynamic_batch: make the batch axis of inputs and outputs dynamic (otherwise batch 1).
        model: an already built detector (tests); its ``cfg`` must still be given for metadata.
        check: run ``onnx.checker.check_model`` on the result.

    Returns:
        The decoded metadata written into the file.

    Raises:
        ValueError: a bad ``img_size`` / ``opset``; NotImplementedError: an unsupported detector.
    """
    if opset < 16:
        raise ValueError(f'opset must be >= 16 (RoiAlign with half-pixel coordinates), got {opset}')
    import onnx

    from kiln.config import Config
    cfg = Config.fromfile(os.fspath(config)) if isinstance(config, (str, os.PathLike)) else config
    if model is None:
        model, cfg, dataset_meta = load_detector(cfg, checkpoint)
    else:
        from kiln.det.apis.inferencer import _config_classes
        dataset_meta = _config_classes(cfg)
    scale, keep_ratio = _test_resize(cfg)
    if img_size is not None:
        h, w = (int(v) for v in img_size)
        if h <= 0 or w <= 0:
            raise ValueError(f'--img-size must be two positive integers H W, got {img_size}')
        scale, keep_ratio = (w, h), True
    else:
        h, w = default_input_size(cfg)
    module = DetectorExportModule(model.cpu().eval(), (h, w)).eval()
    batch = 1
    image = torch.zeros(batch, h, w, 3, dtype=torch.uint8)
    img_shape = torch.tensor([[h, w]] * batch, dtype=torch.int64)
    outputs = ['boxes', 'scores', 'labels'] + (['masks'] if module.with_mask else [])
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in ['image', 'img_shape', *outputs]}
    out_file = os.fspath(out_file)
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about constant sizes (the input size is fixed)
        torch.onnx.export(module, (image, img_shape), out_file, dynamo=False, opset_version=int(opset),
                          input_names=['image', 'img_shape'], output_names=outputs, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    meta = export_metadata(module, cfg, dataset_meta, scale, keep_ratio)
    proto = onnx.load(out_file)
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f'kiln {type(model).__name__} detector; see metadata_props and docs/deploy.md'
    onnx.save(proto, out_file)
    if check:
        onnx.checker.check_model(out_file)
    return {k: json.loads(v) for k, v in meta.items()}
