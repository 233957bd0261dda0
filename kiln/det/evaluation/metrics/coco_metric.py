"""``CocoMetric``: COCO-style box / mask AP and proposal recall computed with ``COCOeval`` (pycocotools or
faster-coco-eval).

Reference: MMDetection 3.x ``mmdet.evaluation.CocoMetric`` (behaviour, config keys, result names) on top of
pycocotools (https://github.com/cocodataset/cocoapi) or faster-coco-eval
(https://github.com/MiXaiLL76/faster_coco_eval, the same algorithm with matching/accumulation in C++); metric
definitions from Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import os.path as osp
from typing import Any, Sequence

import numpy as np

from kiln.evaluator import BaseMetric
from kiln.logging import print_log
from kiln.registry import METRICS

from .coco_utils import (allowed_items, build_coco_from_gt, coco_classes, coco_stat_index, det_results_to_coco,
                         encode_masks, format_table, load_coco_api, masks_to_numpy, resolve_backend,
                         segm_results_to_coco, to_numpy)

_DEFAULT_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
_METRICS = ('bbox', 'segm', 'proposal')


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO detection metrics: box AP (``bbox``), mask AP (``segm``) and class-agnostic proposal recall
    (``proposal``), each computed by ``COCOeval`` of pycocotools or faster-coco-eval (``backend``).

    Ground truth:

    * with ``ann_file``: the COCO json (boxes, and polygons / RLE for ``segm``); the samples' ``img_id`` must be
      its image ids. Only the images seen in ``process`` are evaluated.
    * without: built from each sample's ``instances`` metainfo (the dataset records' original-image annotations,
      written there by ``PackDetInputs``): ``bbox`` xyxy -> xywh, ``ignore_flag`` -> ``iscrowd=1``,
      ``bbox_label`` -> category, ``mask`` (COCO polygons or RLE) -> ``segmentation``; categories =
      ``dataset_meta['classes']``. ``area`` is the mask area when there is a mask (as in a COCO json), else the
      box area. If the records carry no ``mask`` but ``segm`` is asked for, the masks are taken from
      ``gt_instances.masks`` / ``ignored_instances.masks`` (tensor, array or ``BitmapMasks``/``PolygonMasks``),
      which must then be in the original image (MMDetection test pipelines load annotations after ``Resize``).

    Predictions (``pred_instances``), all in the original image: ``bboxes`` float32 (K, 4) xyxy pixels, ``scores``
    (K,), ``labels`` (K,) (contiguous class indices, mapped to the json's category ids through the class
    names) and, for ``segm``, ``masks`` (K, H, W) bool with (H, W) = ``ori_shape`` (RLE-encoded with
    ``pycocotools.mask.encode`` in ``process``; a list of RLE dicts is also accepted), optionally
    ``mask_scores`` (K,) used as the mask results' scores.

    ``compute_metrics`` returns floats rounded to 3 decimals (the Evaluator prefixes ``coco/``), named as in
    MMDetection:

    * ``bbox`` / ``segm``: ``<metric>_mAP``, ``_mAP_50``, ``_mAP_75``, ``_mAP_s``, ``_mAP_m``, ``_mAP_l`` (or
      ``metric_items``), e.g. ``coco/segm_mAP_50``; with ``classwise=True`` also the AP of each class,
      ``<class>_precision`` for ``bbox`` (MMDetection's key, e.g. ``coco/RBC_precision``) and
      ``segm_<class>_precision`` for ``segm`` (MMDetection gives both the same key, so segm overwrote bbox), and a
      per-class table in the log;
    * ``proposal``: ``AR@100``, ``AR@300``, ``AR@1000``, ``AR_s@1000``, ``AR_m@1000``, ``AR_l@1000`` (``AR@k``
      for each ``k`` in ``proposal_nums``), computed with ``useCats=0`` (labels ignored) and
      ``maxDets=proposal_nums``.

    ``COCOeval`` always uses ``maxDets=proposal_nums``, so AP counts up to ``proposal_nums[-1]`` detections per
    image (as in MMDetection). For ``segm`` the results' boxes are dropped before ``loadRes`` so that the areas
    of the small/medium/large ranges are mask areas (as MMDetection does). A metric without any prediction
    gives 0.0 for every item (with a warning).

    Args:
        ann_file: COCO json with the ground truth, or None (see above).
        metric: ``'bbox'``, ``'segm'``, ``'proposal'`` or a list of them.
        classwise: also compute and log per-class AP (``bbox`` and ``segm``).
        proposal_nums: ``maxDets`` of COCOeval (3 increasing ints).
        iou_thrs: IoU thresholds (default 0.50:0.05:0.95).
        metric_items: which of ``mAP, mAP_50, mAP_75, mAP_s, mAP_m, mAP_l, AR@k, AR_s@k, AR_m@k, AR_l@k`` to
            return for every metric (``AR@k`` needs ``k`` in ``proposal_nums``).
        format_only: only write the results in COCO result format and return ``{}``:
            ``<outfile_prefix>.bbox.json`` (for ``bbox`` and ``proposal``) and ``<outfile_prefix>.segm.json``
            (for ``segm``: box, score, category and RLE ``segmentation`` of each mask).
        outfile_prefix: where to write the result files (and, without ``ann_file``, ``<prefix>.gt.json``).
        collect_device, prefix: see :class:`kiln.evaluator.BaseMetric`.
        sort_categories: sort the json's categories by id before evaluating.
        backend_args: fsspec storage options to read ``ann_file``.
        logger: a ``logging.Logger`` for the COCOeval summary and the per-class table (None prints them).
        backend: ``'pycocotools'`` (the reference implementation), ``'faster_coco_eval'`` (the same numbers,
            several times faster on large prediction sets) or ``None`` / ``'auto'``: faster-coco-eval when it is
            installed, else pycocotools.

    Raises:
        KeyError: unsupported ``metric`` or ``metric_items`` (``'proposal_fast'`` is not implemented).
        ValueError: an unknown ``backend``. ImportError: ``backend='faster_coco_eval'`` without the package.
        ValueError: ``format_only`` without ``outfile_prefix``; bad ``proposal_nums``; a sample without
            ``instances`` when there is no ``ann_file``; ``segm`` on a sample without predicted ``masks`` or with
            masks of another size than ``ori_shape``; ``dataset_meta`` classes that are not categories of
            ``ann_file``.
    """

    default_prefix: str | None = 'coco'

    def __init__(self, ann_file: str | None = None, metric: str | Sequence[str] = 'bbox', classwise: bool = False,
                 proposal_nums: Sequence[int] = (100, 300, 1000), iou_thrs: float | Sequence[float] | None = None,
                 metric_items: Sequence[str] | None = None, format_only: bool = False,
                 outfile_prefix: str | None = None, collect_device: str = 'cpu', prefix: str | None = None,
                 sort_categories: bool = False, backend_args: dict | None = None,
                 logger: logging.Logger | None = None, backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = [metric] if isinstance(metric, str) else list(metric)
        for m in metrics:
            if m == 'proposal_fast':
                raise KeyError("CocoMetric: metric 'proposal_fast' is not implemented; use 'proposal' (COCOeval "
                               'recall, class-agnostic)')
            if m not in _METRICS:
                raise KeyError(f'CocoMetric: metric must be one of {list(_METRICS)}, got {m!r}')
        if not metrics:
            raise KeyError(f'CocoMetric: metric is empty; choose from {list(_METRICS)}')
        self.metrics = list(dict.fromkeys(metrics))
        self.classwise = classwise
        self.proposal_nums = [int(n) for n in proposal_nums]
        if len(self.proposal_nums) != 3 or sorted(self.proposal_nums) != self.proposal_nums:
            raise ValueError(f'CocoMetric: proposal_nums must hold 3 increasing ints, got {proposal_nums!r}')
        if iou_thrs is None:
            iou_thrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.iou_thrs = np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64))
        if metric_items is not None:
            metric_items = [metric_items] if isinstance(metric_items, str) else list(metric_items)
            allowed = allowed_items(self.proposal_nums)
            bad = [m for m in metric_items if m not in allowed]
            if bad:
                raise KeyError(f'CocoMetric: metric_items {bad} are not supported; choose from {list(allowed)}')
        self.metric_items = metric_items
        if format_only and outfile_prefix is None:
            raise ValueError('CocoMetric: format_only=True needs outfile_prefix (where to write the results)')
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.ann_file = ann_file
        self.sort_categories = sort_categories
        self.backend_args = backend_args
        self.logger = logger
        self.backend = resolve_backend(backend)
        self._coco_api = None  # built lazily: the backend is imported on first use

    # ------------------------------------------------------------------ helpers
    def _log(self, msg: str, level: int = logging.INFO) -> None:
        print_log(msg, logger=self.logger, level=level)

    def _category_ids(self, coco: Any) -> list[int]:
        """json category ids in label order (label i <-> ``dataset_meta['classes'][i]``)."""
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            return sorted(coco.cats) if self.sort_categories else [c['id'] for c in coco.dataset['categories']]
        name_to_id: dict[str, int] = {}
        for cat in coco.dataset['categories']:
            name_to_id.setdefault(cat['name'], cat['id'])
        missing = [c for c in classes if c not in name_to_id]
        if missing:
            raise ValueError(f'CocoMetric: classes {missing} of dataset_meta are not categories of '
                             f'{self.ann_file or "the ground truth"}')
        return [name_to_id[c] for c in classes]

    # ------------------------------------------------------------------ BaseMetric API
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store one batch's predictions (numpy / RLE, CPU) and image sizes / ground truth.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: one dict per image (``DetDataSample.to_dict()``; data samples are converted too) with
                ``img_id``, ``ori_shape`` (h, w), ``pred_instances`` (``bboxes`` (K, 4) xyxy original pixels,
                ``scores`` (K,), ``labels`` (K,), and for ``segm`` ``masks`` (K, H, W)) and, without
                ``ann_file``, ``instances``.
        """
        need_masks = 'segm' in self.metrics
        for i, sample in enumerate(data_samples):
            if hasattr(sample, 'to_dict'):
                sample = sample.to_dict()
            where = f'data sample {i} (img_id={sample.get("img_id")})'
            pred = sample.get('pred_instances')
            if pred is None:
                raise KeyError(f'CocoMetric.process: {where} has no pred_instances')
            if hasattr(pred, 'to_dict'):
                pred = pred.to_dict()
            ori_shape = sample.get('ori_shape')
            height = int(ori_shape[0]) if ori_shape is not None else 0
            width = int(ori_shape[1]) if ori_shape is not None else 0
            result = dict(img_id=sample['img_id'],
                          bboxes=to_numpy(pred['bboxes'], np.float32).reshape(-1, 4),
                          scores=to_numpy(pred['scores'], np.float32).reshape(-1),
                          labels=to_numpy(pred['labels'], np.int64).reshape(-1))
            if pred.get('masks') is not None:
                result['masks'] = self._encode_pred_masks(pred['masks'], height, width, where)
                if pred.get('mask_scores') is not None:
                    result['mask_scores'] = to_numpy(pred['mask_scores'], np.float32).reshape(-1)
            elif need_masks:
                raise ValueError(f"CocoMetric: metric 'segm' needs pred_instances.masks, but {where} has none "
                                 '(is the model a mask model?)')
            gt = dict(img_id=sample['img_id'], height=height, width=width)
            if self.ann_file is None:
                gt['anns'] = self._gt_anns(sample, where, need_masks, height, width)
            self.results.append((gt, result))

    @staticmethod
    def _encode_pred_masks(masks: Any, height: int, width: int, where: str) -> list[dict]:
        if isinstance(masks, (list, tuple)) and all(isinstance(m, dict) for m in masks):
            return [dict(m, counts=m['counts'].decode('ascii') if isinstance(m['counts'], bytes) else m['counts'])
                    for m in masks]  # already RLE-encoded
        arr = masks_to_numpy(masks)
        if arr.ndim != 3:
            raise ValueError(f'CocoMetric: {where}: pred_instances.masks must be (K, H, W), got shape {arr.shape}')
        if height and width and arr.shape[0] and arr.shape[1:] != (height, width):
            raise ValueError(f'CocoMetric: {where}: pred_instances.masks are {arr.shape[1:]} but ori_shape is '
                             f'{(height, width)}; predicted masks must be in the original image')
        return encode_masks(arr)

    @staticmethod
    def _gt_anns(sample: dict, where: str, need_masks: bool, height: int, width: int) -> list[dict]:
        if 'instances' not in sample:
            raise ValueError(f'CocoMetric: {where} has no "instances" metainfo; without ann_file the ground truth '
                             'comes from it (keep PackDetInputs after LoadAnnotations, or pass ann_file)')
        anns = []
        for inst in sample['instances']:
            ann = dict(bbox=[float(v) for v in inst['bbox']], bbox_label=int(inst['bbox_label']),
                       ignore_flag=int(inst.get('ignore_flag', 0)))
            if inst.get('mask') is not None:
                ann['mask'] = inst['mask']
            anns.append(ann)
        if need_masks and anns and not any('mask' in a for a in anns):
            anns = CocoMetric._anns_from_gt_instances(sample, where, height, width)
        return anns

    @staticmethod
    def _anns_from_gt_instances(sample: dict, where: str, height: int, width: int) -> list[dict]:
        """Ground truth from ``gt_instances`` / ``ignored_instances`` (boxes, labels, masks) when the records
        carry no ``mask``; the masks must be in the original image."""
        anns = []
        for key, ignore in (('gt_instances', 0), ('ignored_instances', 1)):
            inst = sample.get(key)
            if inst is None:
                continue
            if hasattr(inst, 'to_dict'):
                inst = inst.to_dict()
            boxes = inst.get('bboxes')
            n = 0 if boxes is None else len(boxes)
            if n == 0:
                continue
            if inst.get('masks') is None:
                raise ValueError(f"CocoMetric: metric 'segm' without ann_file needs ground-truth masks, but {where} "
                                 f'has neither instances[i]["mask"] nor {key}.masks (LoadAnnotations(with_mask=True))')
            masks = masks_to_numpy(inst['masks'])
            if masks.shape[1:] != (height, width):
                raise ValueError(f'CocoMetric: {where}: {key}.masks are {masks.shape[1:]} but ori_shape is '
                                 f'{(height, width)}; load annotations after Resize in the test pipeline, or '
                                 'keep "mask" in the dataset records')
            boxes = to_numpy(boxes, np.float64).reshape(-1, 4)
            labels = to_numpy(inst['labels'], np.int64).reshape(-1)
            for box, label, mask in zip(boxes.tolist(), labels.tolist(), masks):
                anns.append(dict(bbox=box, bbox_label=label, ignore_flag=ignore, mask=mask))
        return anns

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Evaluate the collected ``(gt, prediction)`` pairs; see the class docstring for the returned keys."""
        gts, preds = zip(*results) if results else ((), ())
        if self.ann_file is not None:
            if self._coco_api is None:
                self._coco_api = load_coco_api(self.ann_file, self.backend_args, self.sort_categories,
                                               self.backend)
            coco_gt = self._coco_api
            img_ids = list(dict.fromkeys(g['img_id'] for g in gts))
            unknown = [i for i in img_ids if i not in coco_gt.imgs]
            if unknown:
                raise ValueError(f'CocoMetric: img_id {unknown[:5]} of the data samples are not image ids of '
                                 f'{self.ann_file} (e.g. {list(coco_gt.imgs)[:3]})')
            id_map = {i: i for i in img_ids}
        else:
            classes = (self.dataset_meta or {}).get('classes')
            if classes is None:
                raise ValueError('CocoMetric: without ann_file, dataset_meta["classes"] is required to build the '
                                 'ground truth')
            coco_gt, id_map = build_coco_from_gt(gts, classes, self.backend)
            img_ids = list(id_map.values())
            if self.outfile_prefix is not None:
                self._dump(coco_gt.dataset, f'{self.outfile_prefix}.gt.json')
        cat_ids = self._category_ids(coco_gt)
        dets = {'bbox': det_results_to_coco(preds, cat_ids, id_map)}
        if 'segm' in self.metrics:
            dets['segm'] = segm_results_to_coco(preds, cat_ids, id_map)

        if self.format_only:
            out_ids = {v: k for k, v in id_map.items()}
            for kind in ('bbox', 'segm'):
                if kind in dets and (kind == 'bbox' or 'segm' in self.metrics):
                    self._dump([dict(d, image_id=out_ids[d['image_id']]) for d in dets[kind]],
                               f'{self.outfile_prefix}.{kind}.json')
            self._log(f'CocoMetric: results saved to {osp.dirname(osp.abspath(self.outfile_prefix))}')
            return {}

        out: dict[str, float] = {}
        for metric in self.metrics:
            kind = 'segm' if metric == 'segm' else 'bbox'
            if metric == 'proposal':
                items = list(self.metric_items or
                             [f'AR@{n}' for n in self.proposal_nums] +
                             [f'AR_{a}@{self.proposal_nums[-1]}' for a in 'sml'])
                names = {item: item for item in items}
            else:
                items = list(self.metric_items or _DEFAULT_ITEMS)
                names = {item: f'{metric}_{item}' for item in items}
            if not dets[kind]:
                self._log(f'CocoMetric: there is no prediction at all for {metric}; every {metric} metric is 0.0',
                          logging.WARNING)
                out.update({name: 0.0 for name in names.values()})
                if self.classwise and metric != 'proposal':
                    out.update({_class_key(metric, coco_gt.cats[c]["name"]): 0.0 for c in cat_ids})
                continue
            out.update(self._evaluate(metric, coco_gt, dets[kind], cat_ids, img_ids, names))
        return out

    def _evaluate(self, metric: str, coco_gt: Any, dets: list[dict], cat_ids: list[int], img_ids: list,
                  names: dict[str, str]) -> dict[str, float]:
        _, coco_eval_cls = coco_classes(self.backend)
        if metric == 'segm':
            # without a box, loadRes takes each result's area from its mask (areas of s/m/l ranges)
            dets = [{k: v for k, v in d.items() if k != 'bbox'} for d in dets]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_dt = coco_gt.loadRes(dets)
            kwargs = dict(print_function=print) if self.backend == 'faster_coco_eval' else {}
            coco_eval = coco_eval_cls(coco_gt, coco_dt, 'segm' if metric == 'segm' else 'bbox', **kwargs)
            coco_eval.params.catIds = cat_ids
            coco_eval.params.imgIds = img_ids
            coco_eval.params.maxDets = list(self.proposal_nums)
            coco_eval.params.iouThrs = self.iou_thrs
            if metric == 'proposal':
                coco_eval.params.useCats = 0
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        self._log(f'Evaluating {metric} ({self.backend})...\n' + buf.getvalue().rstrip())

        out: dict[str, float] = {}
        if self.classwise and metric != 'proposal':
            out.update(self._classwise(metric, coco_gt, coco_eval, cat_ids))
        for item, name in names.items():
            out[name] = float(f'{coco_eval.stats[coco_stat_index(item, self.proposal_nums)]:.3f}')
        if metric != 'proposal':
            self._log(f'{metric}_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in coco_eval.stats[:6]))
        return out

    def _classwise(self, metric: str, coco_gt: Any, coco_eval: Any, cat_ids: list[int]) -> dict[str, float]:
        """Per-class AP (area 'all', last maxDets) at IoU 0.50:0.95, 0.50, 0.75 and per area range."""
        precisions = coco_eval.eval['precision']  # (T iou, R recall, K class, A area, M maxDets)
        iou_index = {k: np.flatnonzero(np.isclose(self.iou_thrs, v)) for k, v in (('50', 0.5), ('75', 0.75))}

        def mean_ap(p: np.ndarray) -> float:
            p = p[p > -1]
            return float(np.mean(p)) if p.size else float('nan')

        out, rows = {}, []
        for k, cat_id in enumerate(cat_ids):
            name = coco_gt.cats[cat_id]['name']
            ap = mean_ap(precisions[:, :, k, 0, -1])
            row = [name, f'{ap:.3f}']
            for key in ('50', '75'):
                idx = iou_index[key]
                row.append(f'{mean_ap(precisions[idx[0], :, k, 0, -1]):.3f}' if idx.size else 'nan')
            for area in (1, 2, 3):
                row.append(f'{mean_ap(precisions[:, :, k, area, -1]):.3f}')
            rows.append(row)
            out[_class_key(metric, name)] = round(ap, 3)
        headers = ['category', 'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
        self._log(f'{metric} per class:\n' + format_table(headers, rows))
        return out

    @staticmethod
    def _dump(obj: Any, path: str) -> None:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(obj, f)


def _class_key(metric: str, name: str) -> str:
    """Classwise AP key: MMDetection's ``<class>_precision`` for bbox, ``segm_<class>_precision`` for segm."""
    return f'{name}_precision' if metric == 'bbox' else f'{metric}_{name}_precision'
