"""Error analysis of detection results: confusion matrix, per-class precision-recall curves, per-image AP.

All functions take per-image ground truth and predictions as plain dicts (arrays or tensors, any device):

* ground truth: ``bboxes`` (N, 4) xyxy pixels, ``labels`` (N,) int class indices; optionally ``ignore_flags``
  (N,) (1 = crowd / difficult; used by the COCO-based functions only). :func:`gt_from_sample` builds it from a
  data sample's ``instances`` metainfo (the dataset records) or its ``gt_instances``.
* predictions: ``bboxes`` (K, 4) xyxy pixels, ``scores`` (K,), ``labels`` (K,).

References: MMDetection 3.x ``tools/analysis_tools/confusion_matrix.py`` and ``analyze_results.py`` (semantics,
re-implemented); the PR curves are pycocotools' / faster-coco-eval's ``COCOeval.accumulate`` arrays.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import os.path as osp
from typing import Any, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou, nms

from .metrics.coco_utils import (build_coco_from_gt, coco_classes, det_results_to_coco, resolve_backend,
                                 to_numpy)

__all__ = ['confusion_matrix', 'gt_from_sample', 'image_ap', 'pr_curves', 'pred_from_sample', 'write_analysis']


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default)  # dicts and data elements (``BaseDataElement.get`` sees metainfo too)


def gt_from_sample(sample: Any) -> dict[str, np.ndarray]:
    """Ground truth of one data sample (``DetDataSample`` or its ``to_dict()``) in the original image:
    ``bboxes`` float64 (N, 4) xyxy, ``labels`` int64 (N,), ``ignore_flags`` int64 (N,).

    Taken from the ``instances`` metainfo (the dataset records, which ``PackDetInputs`` keeps) when present, else
    from ``gt_instances`` (flags 0) and ``ignored_instances`` (flags 1), which must then be in the original
    image.

    Raises:
        ValueError: the sample has neither (names its ``img_id``).
    """
    instances = _get(sample, 'instances')
    if instances is not None:
        boxes = np.array([i['bbox'] for i in instances], dtype=np.float64).reshape(-1, 4)
        labels = np.array([i['bbox_label'] for i in instances], dtype=np.int64)
        flags = np.array([int(i.get('ignore_flag', 0)) for i in instances], dtype=np.int64)
        return dict(bboxes=boxes, labels=labels, ignore_flags=flags)
    parts = []
    for key, flag in (('gt_instances', 0), ('ignored_instances', 1)):
        inst = _get(sample, key)
        if inst is None or _get(inst, 'bboxes') is None:
            continue
        boxes = to_numpy(_get(inst, 'bboxes'), np.float64).reshape(-1, 4)
        parts.append((boxes, to_numpy(_get(inst, 'labels'), np.int64).reshape(-1), np.full(len(boxes), flag)))
    if not parts:
        raise ValueError(f'image {_get(sample, "img_id")!r}: the data sample has neither "instances" metainfo nor '
                         'gt_instances; keep PackDetInputs after LoadAnnotations in the pipeline')
    return dict(bboxes=np.concatenate([p[0] for p in parts]), labels=np.concatenate([p[1] for p in parts]),
                ignore_flags=np.concatenate([p[2] for p in parts]).astype(np.int64))


def pred_from_sample(sample: Any) -> dict[str, np.ndarray]:
    """``pred_instances`` of one data sample as numpy: ``bboxes`` float32 (K, 4), ``scores`` float32 (K,),
    ``labels`` int64 (K,).

    Raises:
        KeyError: no ``pred_instances`` (names the ``img_id``).
    """
    pred = _get(sample, 'pred_instances')
    if pred is None:
        raise KeyError(f'image {_get(sample, "img_id")!r}: the data sample has no pred_instances')
    return dict(bboxes=to_numpy(_get(pred, 'bboxes'), np.float32).reshape(-1, 4),
                scores=to_numpy(_get(pred, 'scores'), np.float32).reshape(-1),
                labels=to_numpy(_get(pred, 'labels'), np.int64).reshape(-1))


def _check_pairs(gts: Sequence[dict], preds: Sequence[dict]) -> None:
    if len(gts) != len(preds):
        raise ValueError(f'{len(gts)} ground-truth images but {len(preds)} prediction images; they must pair up')


def confusion_matrix(gts: Sequence[dict], preds: Sequence[dict], num_classes: int, score_thr: float = 0.3,
                     tp_iou_thr: float = 0.5, nms_iou_thr: float | None = None) -> np.ndarray:
    """Detection confusion matrix with MMDetection's ``confusion_matrix.py`` semantics.

    Rows are ground-truth classes, columns predicted classes; index ``num_classes`` is *background*. Per image,
    every prediction with ``score >= score_thr`` is compared with every ground-truth box (all of them, ignored
    ones included, as MMDetection does):

    * each ground-truth box with IoU >= ``tp_iou_thr`` adds 1 to ``[gt_label, pred_label]`` (a prediction can
      count against several boxes; same label = true positive on the diagonal, else a class confusion);
    * a prediction that overlaps no box enough adds 1 to ``[background, pred_label]`` (false positive);
    * a ground-truth box that no prediction of its own class matched adds 1 to ``[gt_label, background]``
      (false negative; it may also have been counted as confused with another class).

    ``[background, background]`` stays 0.

    Args:
        gts, preds: per-image dicts (see the module docstring), in the same order.
        num_classes: number of classes C.
        score_thr: minimum score of the predictions taken into account.
        tp_iou_thr: IoU (``torchvision.ops.box_iou``) from which a prediction matches a box.
        nms_iou_thr: if set, per-class NMS (``torchvision.ops.nms``) with this IoU on the kept predictions
            first (to try another NMS threshold than the model's).

    Returns:
        int64 array (C + 1, C + 1).

    Raises:
        ValueError: ``gts`` and ``preds`` of different lengths, or a label outside ``0..C-1`` (names the image).
    """
    _check_pairs(gts, preds)
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    bg = num_classes
    for idx, (gt, pred) in enumerate(zip(gts, preds)):
        gt_boxes = torch.as_tensor(to_numpy(gt['bboxes'], np.float64).reshape(-1, 4))
        gt_labels = to_numpy(gt['labels'], np.int64).reshape(-1)
        boxes = torch.as_tensor(to_numpy(pred['bboxes'], np.float64).reshape(-1, 4))
        scores = torch.as_tensor(to_numpy(pred['scores'], np.float64).reshape(-1))
        labels = to_numpy(pred['labels'], np.int64).reshape(-1)
        for name, lab in (('ground-truth', gt_labels), ('predicted', labels)):
            if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
                raise ValueError(f'image {idx}: {name} labels must be in 0..{num_classes - 1}, got '
                                 f'{sorted(set(lab.tolist()))}')
        matched = np.zeros(len(gt_labels), dtype=bool)
        keep = (scores >= score_thr).numpy()
        for label in np.unique(labels[keep]):
            sel = np.flatnonzero(keep & (labels == label))
            if nms_iou_thr is not None:
                sel = sel[nms(boxes[sel].float(), scores[sel].float(), nms_iou_thr).numpy()]
            ious = box_iou(boxes[sel], gt_boxes).numpy() if len(gt_labels) else np.zeros((len(sel), 0))
            hits = ious >= tp_iou_thr  # (dets, gts)
            for row in hits:
                np.add.at(matrix, (gt_labels[row], label), 1)
                if not row.any():
                    matrix[bg, label] += 1
            matched |= hits.any(0) & (gt_labels == label)
        np.add.at(matrix, (gt_labels[~matched], bg), 1)
    return matrix


def _coco_pair(gts: Sequence[dict], preds: Sequence[dict], classes: Sequence[str], backend: str):
    """COCO ground truth and results of ``backend`` for per-image dicts (image ids 1..N)."""
    records, results = [], []
    for i, (gt, pred) in enumerate(zip(gts, preds)):
        boxes = to_numpy(gt['bboxes'], np.float64).reshape(-1, 4)
        labels = to_numpy(gt['labels'], np.int64).reshape(-1)
        flags = to_numpy(gt.get('ignore_flags', np.zeros(len(labels))), np.int64).reshape(-1)
        records.append(dict(img_id=i, height=0, width=0,
                            anns=[dict(bbox=b, bbox_label=int(l), ignore_flag=int(f))
                                  for b, l, f in zip(boxes.tolist(), labels, flags)]))
        results.append(dict(img_id=i, bboxes=to_numpy(pred['bboxes'], np.float32).reshape(-1, 4),
                            scores=to_numpy(pred['scores'], np.float32).reshape(-1),
                            labels=to_numpy(pred['labels'], np.int64).reshape(-1)))
    coco_gt, id_map = build_coco_from_gt(records, classes, backend)
    return coco_gt, det_results_to_coco(results, list(range(len(classes))), id_map), list(id_map.values())


def _run_cocoeval(coco_gt: Any, dets: list[dict], img_ids: list, num_classes: int, iou_thrs: np.ndarray,
                  max_dets: int, backend: str) -> Any:
    _, coco_eval_cls = coco_classes(backend)
    kwargs = dict(print_function=lambda *a, **k: None) if backend == 'faster_coco_eval' else {}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = coco_eval_cls(coco_gt, coco_gt.loadRes(dets), 'bbox', **kwargs)
        ev.params.imgIds = img_ids
        ev.params.catIds = list(range(num_classes))
        ev.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        ev.params.maxDets = [int(max_dets)]
        ev.evaluate()
        ev.accumulate()
    return ev


def pr_curves(gts: Sequence[dict], preds: Sequence[dict], classes: Sequence[str], iou_thr: float = 0.5,
              max_dets: int = 100, backend: str | None = None) -> dict[str, Any]:
    """Per-class precision-recall curves at one IoU threshold, as ``COCOeval`` computes them for AP.

    The curves are COCOeval's interpolated precision (the best precision at recall >= r) at the 101 recall
    points 0, 0.01, ..., 1 (area 'all', up to ``max_dets`` detections per image); ``ap`` (their mean) is the
    per-class AP at ``iou_thr`` (AP50 by default; its mean over classes is ``coco/bbox_mAP_50`` when
    ``max_dets`` is at least the detections per image). Past a class's maximum recall the precision is 0.

    Args:
        gts, preds: per-image dicts (module docstring), in the same order.
        classes: class names (label i <-> ``classes[i]``).
        iou_thr: IoU threshold of a true positive.
        max_dets: detections per image taken (best scores first).
        backend: COCOeval implementation (see :class:`~kiln.det.evaluation.CocoMetric`); None = auto.

    Returns:
        dict with ``recall`` (101,) float, ``precision`` (C, 101) float (NaN rows for classes without ground
        truth), ``scores`` (C, 101) (the detection score at which each point is reached, NaN where unreached),
        ``ap`` (C,), ``max_recall`` (C,) (recall with every detection; NaN without ground truth),
        ``num_gts`` (C,) int (non-ignored boxes), ``iou_thr``, ``classes``.

    Raises:
        ValueError: ``gts`` and ``preds`` of different lengths; a predicted label outside the classes.
    """
    _check_pairs(gts, preds)
    backend = resolve_backend(backend)
    num_classes = len(classes)
    num_gts = np.zeros(num_classes, dtype=np.int64)
    for gt in gts:
        labels = to_numpy(gt['labels'], np.int64).reshape(-1)
        flags = to_numpy(gt.get('ignore_flags', np.zeros(len(labels))), np.int64).reshape(-1)
        num_gts += np.bincount(labels[flags == 0], minlength=num_classes)[:num_classes]
    recall_points = np.linspace(0.0, 1.0, 101)
    precision = np.zeros((num_classes, 101))
    scores = np.full((num_classes, 101), np.nan)
    max_recall = np.zeros(num_classes)
    coco_gt, dets, img_ids = _coco_pair(gts, preds, classes, backend)
    if dets:
        ev = _run_cocoeval(coco_gt, dets, img_ids, num_classes, np.array([iou_thr]), max_dets, backend)
        precision = np.asarray(ev.eval['precision'])[0, :, :, 0, -1].T.astype(np.float64)  # (C, R)
        scores = np.asarray(ev.eval['scores'])[0, :, :, 0, -1].T.astype(np.float64)
        max_recall = np.asarray(ev.eval['recall'])[0, :, 0, -1].astype(np.float64)
        scores[precision <= 0] = np.nan
    absent = num_gts == 0
    precision[absent] = np.nan
    scores[absent] = np.nan
    max_recall = np.where(absent, np.nan, np.maximum(max_recall, 0.0))
    ap = np.where(absent, np.nan, np.nan_to_num(precision).mean(axis=1))
    return dict(recall=recall_points, precision=precision, scores=scores, ap=ap, max_recall=max_recall,
                num_gts=num_gts, iou_thr=float(iou_thr), classes=list(classes))


def image_ap(gt: dict, pred: dict, classes: Sequence[str], iou_thrs: Sequence[float] | None = None,
             backend: str | None = None) -> float:
    """COCO-style mAP of one image: AP averaged over ``iou_thrs`` (default 0.50:0.05:0.95) and over the classes
    that have ground truth in the image (``COCOeval`` on that image alone, up to 100 detections).

    This is MMDetection's ``analyze_results.py`` per-image score (there: ``eval_map`` at each IoU of 0.5:0.95,
    averaged; classes without ground truth in the image are left out of the mean). An image without any
    (non-ignored) ground truth scores 1.0 when it has no prediction and 0.0 otherwise.
    """
    backend = resolve_backend(backend)
    iou_thrs = np.linspace(0.5, 0.95, 10) if iou_thrs is None else np.asarray(iou_thrs, dtype=np.float64)
    labels = to_numpy(gt['labels'], np.int64).reshape(-1)
    flags = to_numpy(gt.get('ignore_flags', np.zeros(len(labels))), np.int64).reshape(-1)
    n_pred = len(to_numpy(pred['scores'], np.float32).reshape(-1))
    if not (flags == 0).any():
        return 1.0 if n_pred == 0 else 0.0
    if n_pred == 0:
        return 0.0
    coco_gt, dets, img_ids = _coco_pair([gt], [pred], classes, backend)
    ev = _run_cocoeval(coco_gt, dets, img_ids, len(classes), iou_thrs, 100, backend)
    p = np.asarray(ev.eval['precision'])[:, :, :, 0, -1]  # (T, R, C); -1 for classes without ground truth
    present = np.flatnonzero(np.bincount(labels[flags == 0], minlength=len(classes))[:len(classes)] > 0)
    return float(np.clip(p[:, :, present], 0, None).mean())


def write_analysis(gts: Sequence[dict], preds: Sequence[dict], classes: Sequence[str], out_dir: str | os.PathLike,
                   score_thr: float = 0.3, tp_iou_thr: float = 0.5, nms_iou_thr: float | None = None,
                   pr_iou_thr: float = 0.5, backend: str | None = None) -> dict[str, str]:
    """Write the analysis files of a set of predictions to ``out_dir`` (created):

    * ``pr_curves.png`` and ``pr_curves.json`` (:func:`pr_curves` at ``pr_iou_thr``);
    * ``confusion_matrix.png`` (row-normalised percentages and counts) and ``confusion_matrix.json``
      (:func:`confusion_matrix`: ``matrix`` rows = ground truth, columns = predictions, last = background).

    Returns:
        ``{'pr_curves': path, 'pr_curves_json': path, 'confusion_matrix': path, 'confusion_matrix_json': path}``.
    """
    from ..visualization.plots import plot_confusion_matrix, plot_pr_curves
    os.makedirs(out_dir, exist_ok=True)
    out = {k: osp.join(str(out_dir), f) for k, f in (
        ('pr_curves', 'pr_curves.png'), ('pr_curves_json', 'pr_curves.json'),
        ('confusion_matrix', 'confusion_matrix.png'), ('confusion_matrix_json', 'confusion_matrix.json'))}
    curves = pr_curves(gts, preds, classes, iou_thr=pr_iou_thr, backend=backend)
    plot_pr_curves(curves, out['pr_curves'])
    _dump_json(dict(iou_thr=curves['iou_thr'], classes=curves['classes'], recall=curves['recall'],
                    precision=curves['precision'], scores=curves['scores'], ap=curves['ap'],
                    max_recall=curves['max_recall'], num_gts=curves['num_gts']), out['pr_curves_json'])
    matrix = confusion_matrix(gts, preds, len(classes), score_thr, tp_iou_thr, nms_iou_thr)
    labels = [*classes, 'background']
    plot_confusion_matrix(matrix, labels, out['confusion_matrix'])
    _dump_json(dict(classes=labels, rows='ground truth', columns='prediction', score_thr=score_thr,
                    tp_iou_thr=tp_iou_thr, nms_iou_thr=nms_iou_thr, matrix=matrix), out['confusion_matrix_json'])
    return out


def _dump_json(obj: dict, path: str) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return clean(v.tolist())
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not np.isfinite(v):
            return None  # NaN -> null: strict JSON
        if isinstance(v, np.generic):
            return clean(v.item())
        return v
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({k: clean(v) for k, v in obj.items()}, f)
