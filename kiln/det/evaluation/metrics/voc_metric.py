"""``VOCMetric``: Pascal VOC mean average precision with MMDetection's ``eval_map`` semantics.

Definitions (PASCAL VOC devkit, Everingham et al. 2010, as MMDetection 3.x implements them):

* Boxes are xyxy pixels; with ``use_legacy_coordinate=True`` (VOC, and MMDetection's ``VOCMetric``) widths and
  heights are ``x2 - x1 + 1`` / ``y2 - y1 + 1``. IoU = overlap / max(union, 1e-6), computed in the boxes' dtype.
* Per class and image, detections are visited by descending score; each is matched to the ground-truth box of
  highest IoU (ignored ones, e.g. VOC ``difficult``, included). IoU >= ``iou_thr``: a match to an ignored box (or
  one outside the area range) counts neither as TP nor FP; a match to a box already matched is a FP; otherwise
  TP. IoU below the threshold: FP (with area ranges, only when the detection's own area is in range).
* Over all images, detections are sorted by score; recall = cumTP / #non-ignored GT, precision = cumTP /
  (cumTP + cumFP). AP: ``'area'``: the area under the monotone (max-to-the-right) precision envelope;
  ``'11points'``: the mean over recall thresholds 0, 0.1, ..., 1 of the best precision at recall >= threshold.
* mAP: the mean AP over the classes that have at least one non-ignored ground-truth box.

Reference: MMDetection 3.x ``mmdet/evaluation/functional/mean_ap.py`` (``eval_map``, ``tpfp_default``,
``average_precision``), ``recall.py`` and ``metrics/voc_metric.py`` (behaviour), re-implemented.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from kiln.evaluator import BaseMetric
from kiln.logging import print_log
from kiln.registry import METRICS

from .coco_utils import format_table, to_numpy

__all__ = ['VOCMetric', 'average_precision', 'bbox_overlaps', 'eval_map', 'eval_recalls', 'tpfp_default']


def bbox_overlaps(bboxes1: np.ndarray, bboxes2: np.ndarray, use_legacy_coordinate: bool = False,
                  eps: float = 1e-6) -> np.ndarray:
    """IoU of every pair: (n, 4) x (k, 4) xyxy boxes -> float32 (n, k); ``+1`` pixel widths when legacy."""
    n, k = len(bboxes1), len(bboxes2)
    if n * k == 0:
        return np.zeros((n, k), dtype=np.float32)
    extra = 1.0 if use_legacy_coordinate else 0.0
    a, b = bboxes1[:, None, :], bboxes2[None, :, :]
    area1 = (bboxes1[:, 2] - bboxes1[:, 0] + extra) * (bboxes1[:, 3] - bboxes1[:, 1] + extra)
    area2 = (bboxes2[:, 2] - bboxes2[:, 0] + extra) * (bboxes2[:, 3] - bboxes2[:, 1] + extra)
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + extra, 0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + extra, 0)
    overlap = w * h
    union = np.maximum(area1[:, None] + area2[None, :] - overlap, eps)
    return (overlap / union).astype(np.float32)


def _areas(boxes: np.ndarray, extra: float) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0] + extra) * (boxes[:, 3] - boxes[:, 1] + extra)


def tpfp_default(det_bboxes: np.ndarray, gt_bboxes: np.ndarray, gt_bboxes_ignore: np.ndarray | None = None,
                 iou_thr: float = 0.5, area_ranges: Sequence[tuple] | None = None,
                 use_legacy_coordinate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """True / false positives of one class in one image (see the module docstring).

    Args:
        det_bboxes: (m, 5) xyxy + score. gt_bboxes: (n, 4). gt_bboxes_ignore: (k, 4) or None.
        area_ranges: ``[(min_area, max_area), ...]`` in pixels^2, or None for all.

    Returns:
        ``tp, fp``: float32 (num_scales, m) of 0 / 1, in the order of ``det_bboxes``.
    """
    extra = 1.0 if use_legacy_coordinate else 0.0
    if gt_bboxes_ignore is None:
        gt_bboxes_ignore = np.zeros((0, 4), dtype=np.float32)
    ignored = np.concatenate([np.zeros(len(gt_bboxes), bool), np.ones(len(gt_bboxes_ignore), bool)])
    gts = np.vstack([gt_bboxes, gt_bboxes_ignore])
    ranges = list(area_ranges) if area_ranges is not None else [(None, None)]
    m = len(det_bboxes)
    tp = np.zeros((len(ranges), m), dtype=np.float32)
    fp = np.zeros((len(ranges), m), dtype=np.float32)
    if len(gts) == 0:
        if area_ranges is None:
            fp[...] = 1
        else:
            det_areas = _areas(det_bboxes, extra)
            for r, (lo, hi) in enumerate(ranges):
                fp[r, (det_areas >= lo) & (det_areas < hi)] = 1
        return tp, fp
    ious = bbox_overlaps(det_bboxes, gts, use_legacy_coordinate)
    best_iou, best_gt = ious.max(axis=1), ious.argmax(axis=1)
    order = np.argsort(-det_bboxes[:, -1])
    for r, (lo, hi) in enumerate(ranges):
        covered = np.zeros(len(gts), dtype=bool)
        if lo is None:
            out_of_range = np.zeros(len(gts), dtype=bool)
        else:
            gt_areas = _areas(gts, extra)
            out_of_range = (gt_areas < lo) | (gt_areas >= hi)
        for i in order:
            if best_iou[i] >= iou_thr:
                g = best_gt[i]
                if ignored[g] or out_of_range[g]:
                    continue
                if covered[g]:
                    fp[r, i] = 1
                else:
                    covered[g] = True
                    tp[r, i] = 1
            elif lo is None:
                fp[r, i] = 1
            else:
                area = _areas(det_bboxes[i:i + 1, :4], extra)[0]
                if lo <= area < hi:
                    fp[r, i] = 1
    return tp, fp


def average_precision(recalls: np.ndarray, precisions: np.ndarray, mode: str = 'area') -> np.ndarray | float:
    """AP from (num_scales, n) or (n,) recall / precision curves; ``mode`` ``'area'`` or ``'11points'``.

    Raises:
        ValueError: unknown ``mode``.
    """
    single = recalls.ndim == 1
    recalls, precisions = np.atleast_2d(recalls), np.atleast_2d(precisions)
    ap = np.zeros(recalls.shape[0], dtype=np.float32)
    if mode == 'area':
        s = recalls.shape[0]
        mrec = np.hstack([np.zeros((s, 1), recalls.dtype), recalls, np.ones((s, 1), recalls.dtype)])
        mpre = np.hstack([np.zeros((s, 1), recalls.dtype), precisions, np.zeros((s, 1), recalls.dtype)])
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre, axis=1), axis=1), axis=1)
        for i in range(s):
            steps = np.where(mrec[i, 1:] != mrec[i, :-1])[0]
            ap[i] = np.sum((mrec[i, steps + 1] - mrec[i, steps]) * mpre[i, steps + 1])
    elif mode == '11points':
        for i in range(recalls.shape[0]):
            for thr in np.arange(0, 1 + 1e-3, 0.1):
                precs = precisions[i, recalls[i] >= thr]
                ap[i] += precs.max() if precs.size else 0
        ap /= 11
    else:
        raise ValueError(f"average_precision: mode must be 'area' or '11points', got {mode!r}")
    return ap[0] if single else ap


def eval_map(det_results: Sequence[Sequence[np.ndarray]], annotations: Sequence[dict],
             scale_ranges: Sequence[tuple] | None = None, iou_thr: float = 0.5, eval_mode: str = 'area',
             use_legacy_coordinate: bool = False) -> tuple[float | list[float], list[dict]]:
    """Mean AP over classes.

    Args:
        det_results: per image, per class, an (m, 5) array xyxy + score.
        annotations: per image ``dict(bboxes (n, 4), labels (n,), bboxes_ignore (k, 4), labels_ignore (k,))``
            (the ignore keys optional).
        scale_ranges: ``[(min_side, max_side), ...]`` (areas are their squares) or None.
        iou_thr, eval_mode, use_legacy_coordinate: see the module docstring.

    Returns:
        ``(mean_ap, per_class)``: ``mean_ap`` a float (a list per scale with ``scale_ranges``); ``per_class``
        one ``dict(num_gts, num_dets, recall, precision, ap)`` per class.
    """
    extra = 1.0 if use_legacy_coordinate else 0.0
    area_ranges = [(lo ** 2, hi ** 2) for lo, hi in scale_ranges] if scale_ranges is not None else None
    num_scales = len(area_ranges) if area_ranges is not None else 1
    num_classes = len(det_results[0]) if det_results else 0
    per_class = []
    for c in range(num_classes):
        dets = [img[c] for img in det_results]
        gts, gts_ignore = [], []
        for ann in annotations:
            gts.append(ann['bboxes'][ann['labels'] == c])
            if ann.get('labels_ignore') is not None:
                gts_ignore.append(ann['bboxes_ignore'][ann['labels_ignore'] == c])
            else:
                gts_ignore.append(np.zeros((0, 4), dtype=np.float32))
        tpfp = [tpfp_default(d, g, gi, iou_thr, area_ranges, use_legacy_coordinate)
                for d, g, gi in zip(dets, gts, gts_ignore)]
        num_gts = np.zeros(num_scales, dtype=int)
        for g in gts:
            if area_ranges is None:
                num_gts[0] += len(g)
            else:
                areas = _areas(g, extra)
                for r, (lo, hi) in enumerate(area_ranges):
                    num_gts[r] += np.sum((areas >= lo) & (areas < hi))
        all_dets = np.vstack(dets) if dets else np.zeros((0, 5), np.float32)
        order = np.argsort(-all_dets[:, -1])
        tp = np.cumsum(np.hstack([t for t, _ in tpfp])[:, order], axis=1)
        fp = np.cumsum(np.hstack([f for _, f in tpfp])[:, order], axis=1)
        eps = np.finfo(np.float32).eps
        recalls = tp / np.maximum(num_gts[:, None], eps)
        precisions = tp / np.maximum(tp + fp, eps)
        if area_ranges is None:
            recalls, precisions, n_gt = recalls[0], precisions[0], int(num_gts[0])
        else:
            n_gt = num_gts
        per_class.append(dict(num_gts=n_gt, num_dets=len(all_dets), recall=recalls, precision=precisions,
                              ap=average_precision(recalls, precisions, eval_mode)))
    if area_ranges is not None:
        aps = np.vstack([r['ap'] for r in per_class])
        counts = np.vstack([r['num_gts'] for r in per_class])
        mean_ap: Any = [float(aps[counts[:, s] > 0, s].mean()) if np.any(counts[:, s] > 0) else 0.0
                        for s in range(num_scales)]
    else:
        aps = [r['ap'] for r in per_class if r['num_gts'] > 0]
        mean_ap = float(np.array(aps).mean()) if aps else 0.0
    return mean_ap, per_class


def eval_recalls(gts: Sequence[np.ndarray], proposals: Sequence[np.ndarray], proposal_nums: Sequence[int],
                 iou_thrs: Sequence[float], use_legacy_coordinate: bool = False) -> np.ndarray:
    """Recall of the ground truth by the top-N proposals (MMDetection's ``eval_recalls``).

    Per image, proposals ((k, 4) or (k, 5) sorted by score) are matched one-to-one to ground-truth boxes
    greedily by highest IoU; recall at (N, thr) = matched boxes with IoU >= thr / all boxes.

    Returns:
        float (len(proposal_nums), len(iou_thrs)).
    """
    proposal_nums, iou_thrs = list(proposal_nums), list(iou_thrs)
    best = [[] for _ in proposal_nums]
    total = 0
    for g, p in zip(gts, proposals):
        if p.ndim == 2 and p.shape[1] == 5:
            p = p[np.argsort(p[:, 4])[::-1]]
        total += len(g)
        for j, n in enumerate(proposal_nums):
            ious = bbox_overlaps(g, p[:min(len(p), max(proposal_nums))][:n, :4], use_legacy_coordinate) \
                if len(g) else np.zeros((0, 0), np.float32)
            matched = np.zeros(len(g), dtype=np.float32)
            ious = ious.copy()
            for _ in range(min(ious.shape) if ious.size else 0):
                gt_best = ious.max(axis=1)
                gi = int(gt_best.argmax())
                pi = int(ious[gi].argmax())
                matched[gi] = ious[gi, pi]
                ious[gi, :] = -1
                ious[:, pi] = -1
            best[j].append(matched)
    recalls = np.zeros((len(proposal_nums), len(iou_thrs)), dtype=np.float64)
    for j in range(len(proposal_nums)):
        values = np.concatenate(best[j]) if best[j] else np.zeros(0)
        for t, thr in enumerate(iou_thrs):
            recalls[j, t] = (values >= thr).sum() / max(total, 1)
    return recalls


@METRICS.register_module()
class VOCMetric(BaseMetric):
    """Pascal VOC mAP (or proposal recall) of detection predictions, MMDetection's ``VOCMetric``.

    Config: ``val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')`` (VOC2007; VOC2012
    uses ``'area'``). Reads ``gt_instances`` / ``ignored_instances`` (VOC ``difficult`` boxes: neither TP nor
    FP when matched) and ``pred_instances`` (``bboxes`` xyxy pixels in the original image, ``scores``,
    ``labels``) of each data sample; the ground truth must be in original-image pixels too (kiln's
    ``PackDetInputs`` keeps ``instances`` of the record, which this metric uses when present).

    Args:
        iou_thrs: IoU threshold(s); ``AP50``, ``AP75``... per threshold and ``mAP`` their mean.
        scale_ranges: ``[(min_side, max_side), ...]`` to evaluate per object size, or None.
        metric: ``'mAP'`` or ``'recall'`` (proposal recall at ``proposal_nums``, keys ``recall@N@thr``,
            ``AR@N``; class-agnostic over all predictions).
        proposal_nums: numbers of top-scored predictions for ``'recall'``.
        eval_mode: ``'11points'`` (default, VOC2007) or ``'area'``.
        use_legacy_coordinate: ``+1`` pixel box sizes as the VOC devkit (MMDetection's VOCMetric: True).
        collect_device, prefix: see :class:`kiln.evaluator.BaseMetric` (default prefix ``'pascal_voc'``).

    Keys: ``pascal_voc/mAP``, ``pascal_voc/AP50`` (rounded to 3 decimals, as MMDetection), and with
    ``classwise=True`` ``pascal_voc/<class>_AP50``. A per-class table (gts, dets, recall, AP) is logged.

    Raises:
        ValueError: unknown ``metric`` or ``eval_mode``.
    """

    default_prefix = 'pascal_voc'

    def __init__(self, iou_thrs: float | Sequence[float] = 0.5, scale_ranges: Sequence[tuple] | None = None,
                 metric: str | Sequence[str] = 'mAP', proposal_nums: Sequence[int] = (100, 300, 1000),
                 eval_mode: str = '11points', use_legacy_coordinate: bool = True, classwise: bool = False,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = [float(iou_thrs)] if isinstance(iou_thrs, (int, float)) else [float(t) for t in iou_thrs]
        self.scale_ranges = scale_ranges
        metric = metric[0] if isinstance(metric, (list, tuple)) else metric
        if metric not in ('mAP', 'recall'):
            raise ValueError(f"VOCMetric: metric must be 'mAP' or 'recall', got {metric!r}")
        if eval_mode not in ('area', '11points'):
            raise ValueError(f"VOCMetric: eval_mode must be 'area' or '11points', got {eval_mode!r}")
        self.metric = metric
        self.proposal_nums = list(proposal_nums)
        self.eval_mode = eval_mode
        self.use_legacy_coordinate = use_legacy_coordinate
        self.classwise = classwise

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep, per image, the ground truth and the predictions split by class (numpy)."""
        num_classes = len(self.dataset_meta['classes']) if self.dataset_meta else None
        for sample in data_samples:
            gt, ignored = sample.get('gt_instances', {}), sample.get('ignored_instances', {})
            instances = sample.get('instances')
            if instances is not None:  # the record's boxes are in original-image pixels
                keep = [i for i in instances if not i.get('ignore_flag', 0)]
                drop = [i for i in instances if i.get('ignore_flag', 0)]
                ann = dict(bboxes=np.array([i['bbox'] for i in keep], np.float32).reshape(-1, 4),
                           labels=np.array([i['bbox_label'] for i in keep], np.int64),
                           bboxes_ignore=np.array([i['bbox'] for i in drop], np.float32).reshape(-1, 4),
                           labels_ignore=np.array([i['bbox_label'] for i in drop], np.int64))
            else:
                ann = dict(bboxes=to_numpy(gt.get('bboxes', np.zeros((0, 4))), np.float32).reshape(-1, 4),
                           labels=to_numpy(gt.get('labels', np.zeros(0)), np.int64),
                           bboxes_ignore=to_numpy(ignored.get('bboxes', np.zeros((0, 4))),
                                                  np.float32).reshape(-1, 4),
                           labels_ignore=to_numpy(ignored.get('labels', np.zeros(0)), np.int64))
            pred = sample['pred_instances']
            boxes = to_numpy(pred['bboxes'], np.float32).reshape(-1, 4)
            scores = to_numpy(pred['scores'], np.float32)
            labels = to_numpy(pred['labels'], np.int64)
            n = num_classes if num_classes is not None else int(labels.max(initial=-1)) + 1
            dets = [np.hstack([boxes[labels == c], scores[labels == c, None]]) for c in range(n)]
            self.results.append((ann, dets))

    def compute_metrics(self, results: list) -> dict[str, float]:
        gts, preds = zip(*results)
        classes = list(self.dataset_meta['classes']) if self.dataset_meta else \
            [str(i) for i in range(len(preds[0]))]
        out: dict[str, float] = OrderedDict()
        if self.metric == 'recall':
            proposals = [np.vstack(p) if p else np.zeros((0, 5), np.float32) for p in preds]
            recalls = eval_recalls([g['bboxes'] for g in gts], proposals, self.proposal_nums, self.iou_thrs,
                                   self.use_legacy_coordinate)
            for i, num in enumerate(self.proposal_nums):
                for j, thr in enumerate(self.iou_thrs):
                    out[f'recall@{num}@{thr}'] = float(recalls[i, j])
                out[f'AR@{num}'] = float(recalls[i].mean())
            return out
        mean_aps = []
        for thr in self.iou_thrs:
            mean_ap, per_class = eval_map(preds, gts, self.scale_ranges, thr, self.eval_mode,
                                          self.use_legacy_coordinate)
            mean_aps.append(mean_ap if not isinstance(mean_ap, list) else float(np.mean(mean_ap)))
            out[f'AP{int(thr * 100):02d}'] = round(mean_aps[-1], 3)
            self._log_table(thr, mean_ap, per_class, classes)
            if self.classwise:
                for name, res in zip(classes, per_class):
                    ap = res['ap']
                    out[f'{name}_AP{int(thr * 100):02d}'] = round(float(np.mean(ap)), 3)
        out['mAP'] = float(sum(mean_aps) / len(mean_aps))
        out.move_to_end('mAP', last=False)
        return out

    def _log_table(self, thr: float, mean_ap: Any, per_class: list[dict], classes: list[str]) -> None:
        rows = []
        for name, res in zip(classes, per_class):
            recall = res['recall']
            last = float(np.atleast_2d(recall)[0, -1]) if np.size(recall) else 0.0
            rows.append([name, str(np.sum(res['num_gts'])), str(res['num_dets']), f'{last:.3f}',
                         f'{float(np.mean(res["ap"])):.3f}'])
        mean = float(np.mean(mean_ap)) if isinstance(mean_ap, list) else mean_ap
        rows.append(['mAP', '', '', '', f'{mean:.3f}'])
        print_log(f'VOCMetric (iou_thr={thr}, {self.eval_mode}):\n' +
                  format_table(['class', 'gts', 'dets', 'recall', 'ap'], rows),
                  logger=self.logger, level=logging.INFO)
