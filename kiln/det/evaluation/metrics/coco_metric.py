"""``CocoMetric``: COCO-style box AP computed with pycocotools' ``COCOeval``.

Reference: MMDetection 3.x ``mmdet.evaluation.CocoMetric`` (behaviour, config keys, result names) on top of
pycocotools (https://github.com/cocodataset/cocoapi); metric definitions from Lin et al., "Microsoft COCO:
Common Objects in Context", ECCV 2014.
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

from .coco_utils import (build_coco_from_gt, coco_stat_index, det_results_to_coco, format_table, load_coco_api,
                         to_numpy)

_DEFAULT_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
_ALLOWED_ITEMS = _DEFAULT_ITEMS + ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000')


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO box detection metric (AP averaged over IoU 0.50:0.95, AP50, AP75, AP small/medium/large).

    Ground truth:

    * with ``ann_file``: the COCO json; the samples' ``img_id`` must be its image ids. Only the images seen in
      ``process`` are evaluated.
    * without: built from each sample's ``instances`` metainfo (the dataset records' original-image boxes,
      written there by ``PackDetInputs``): ``bbox`` xyxy -> xywh, ``ignore_flag`` -> ``iscrowd=1``,
      ``area = w * h``, categories = ``dataset_meta['classes']``. Works for VOC-layout data such as BCCD.

    Predictions: ``pred_instances.bboxes`` float32 (K, 4) xyxy pixels in the original image, ``scores`` (K,),
    ``labels`` (K,) (contiguous class indices, mapped to the json's category ids through the class names).

    ``compute_metrics`` returns ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``, ``bbox_mAP_s``, ``bbox_mAP_m``,
    ``bbox_mAP_l`` (or ``metric_items``) as floats rounded to 3 decimals (the Evaluator prefixes ``coco/``).
    ``COCOeval`` uses ``maxDets=proposal_nums``, so AP counts up to ``proposal_nums[-1]`` detections per image
    (as in MMDetection). With ``classwise=True`` it also returns ``bbox_<class>_precision`` (AP of that class)
    and logs a per-class table. If there is no prediction at all every metric is 0.0 (with a warning).

    Args:
        ann_file: COCO json with the ground truth, or None (see above).
        metric: ``'bbox'`` (only box evaluation is implemented) or ``['bbox']``.
        classwise: also compute and log per-class AP.
        proposal_nums: ``maxDets`` of COCOeval (3 increasing ints).
        iou_thrs: IoU thresholds (default 0.50:0.05:0.95).
        metric_items: which of ``mAP, mAP_50, mAP_75, mAP_s, mAP_m, mAP_l, AR@100, AR@300, AR@1000,
            AR_s@1000, AR_m@1000, AR_l@1000`` to return (``AR@k`` uses ``k`` in ``proposal_nums``).
        format_only: only write ``<outfile_prefix>.bbox.json`` (COCO result format) and return ``{}``.
        outfile_prefix: where to write the result (and, without ``ann_file``, the ``.gt.json``) files.
        collect_device, prefix: see :class:`kiln.evaluator.BaseMetric`.
        sort_categories: sort the json's categories by id before evaluating.
        backend_args: fsspec storage options to read ``ann_file``.
        logger: a ``logging.Logger`` for the COCOeval summary and the per-class table (None prints them).

    Raises:
        KeyError: unsupported ``metric`` or ``metric_items``.
        ValueError: ``format_only`` without ``outfile_prefix``; a sample without ``instances`` when there is no
            ``ann_file``; ``dataset_meta`` classes that are not categories of ``ann_file``.
    """

    default_prefix: str | None = 'coco'

    def __init__(self, ann_file: str | None = None, metric: str | Sequence[str] = 'bbox', classwise: bool = False,
                 proposal_nums: Sequence[int] = (100, 300, 1000), iou_thrs: float | Sequence[float] | None = None,
                 metric_items: Sequence[str] | None = None, format_only: bool = False,
                 outfile_prefix: str | None = None, collect_device: str = 'cpu', prefix: str | None = None,
                 sort_categories: bool = False, backend_args: dict | None = None,
                 logger: logging.Logger | None = None, **kwargs: Any) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = [metric] if isinstance(metric, str) else list(metric)
        for m in metrics:
            if m not in ('bbox', 'segm', 'proposal', 'proposal_fast'):
                raise KeyError(f"CocoMetric: metric must be 'bbox', got {m!r}")
            if m != 'bbox':
                raise KeyError(f"CocoMetric: metric {m!r} is not implemented yet; only 'bbox' is")
        self.metrics = metrics
        self.classwise = classwise
        self.proposal_nums = [int(n) for n in proposal_nums]
        if len(self.proposal_nums) != 3:
            raise ValueError(f'CocoMetric: proposal_nums must hold 3 ints, got {proposal_nums!r}')
        if iou_thrs is None:
            iou_thrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.iou_thrs = np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64))
        if metric_items is not None:
            metric_items = [metric_items] if isinstance(metric_items, str) else list(metric_items)
            bad = [m for m in metric_items if m not in _ALLOWED_ITEMS]
            if bad:
                raise KeyError(f'CocoMetric: metric_items {bad} are not supported; choose from {_ALLOWED_ITEMS}')
        self.metric_items = metric_items
        if format_only and outfile_prefix is None:
            raise ValueError('CocoMetric: format_only=True needs outfile_prefix (where to write the results)')
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.ann_file = ann_file
        self.sort_categories = sort_categories
        self.backend_args = backend_args
        self.logger = logger
        self._coco_api = None  # built lazily: pycocotools is imported on first use

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
        """Store one batch's predictions (numpy, CPU) and image sizes / ground truth.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: one dict per image (``DetDataSample.to_dict()``; data samples are converted too) with
                ``img_id``, ``ori_shape`` (h, w), ``pred_instances`` (``bboxes`` (K, 4) xyxy original pixels,
                ``scores`` (K,), ``labels`` (K,)) and, without ``ann_file``, ``instances``.
        """
        for i, sample in enumerate(data_samples):
            if hasattr(sample, 'to_dict'):
                sample = sample.to_dict()
            pred = sample.get('pred_instances')
            if pred is None:
                raise KeyError(f'CocoMetric.process: data sample {i} (img_id={sample.get("img_id")}) has no '
                               'pred_instances')
            if hasattr(pred, 'to_dict'):
                pred = pred.to_dict()
            result = dict(img_id=sample['img_id'],
                          bboxes=to_numpy(pred['bboxes'], np.float32).reshape(-1, 4),
                          scores=to_numpy(pred['scores'], np.float32).reshape(-1),
                          labels=to_numpy(pred['labels'], np.int64).reshape(-1))
            ori_shape = sample.get('ori_shape')
            gt = dict(img_id=sample['img_id'],
                      height=int(ori_shape[0]) if ori_shape is not None else 0,
                      width=int(ori_shape[1]) if ori_shape is not None else 0)
            if self.ann_file is None:
                if 'instances' not in sample:
                    raise ValueError(f'CocoMetric: data sample {i} (img_id={sample.get("img_id")}) has no '
                                     '"instances" metainfo; without ann_file the ground truth comes from it '
                                     '(keep PackDetInputs after LoadAnnotations, or pass ann_file)')
                gt['anns'] = [dict(bbox=[float(v) for v in inst['bbox']], bbox_label=int(inst['bbox_label']),
                                   ignore_flag=int(inst.get('ignore_flag', 0))) for inst in sample['instances']]
            self.results.append((gt, result))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Evaluate the collected ``(gt, prediction)`` pairs; see the class docstring for the returned keys."""
        gts, preds = zip(*results) if results else ((), ())
        if self.ann_file is not None:
            if self._coco_api is None:
                self._coco_api = load_coco_api(self.ann_file, self.backend_args, self.sort_categories)
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
            coco_gt, id_map = build_coco_from_gt(gts, classes)
            img_ids = list(id_map.values())
            if self.outfile_prefix is not None:
                self._dump(coco_gt.dataset, f'{self.outfile_prefix}.gt.json')
        cat_ids = self._category_ids(coco_gt)
        dets = det_results_to_coco(preds, cat_ids, id_map)

        if self.format_only:
            out_ids = {v: k for k, v in id_map.items()}
            self._dump([dict(d, image_id=out_ids[d['image_id']]) for d in dets], f'{self.outfile_prefix}.bbox.json')
            self._log(f'CocoMetric: results saved to {osp.dirname(osp.abspath(self.outfile_prefix))}')
            return {}

        items = list(self.metric_items or _DEFAULT_ITEMS)
        if not dets:
            self._log('CocoMetric: there is no prediction at all; every metric is 0.0', logging.WARNING)
            out = {f'bbox_{item}': 0.0 for item in items}
            if self.classwise:
                out.update({f'bbox_{coco_gt.cats[c]["name"]}_precision': 0.0 for c in cat_ids})
            return out
        return self._evaluate(coco_gt, dets, cat_ids, img_ids, items)

    def _evaluate(self, coco_gt: Any, dets: list[dict], cat_ids: list[int], img_ids: list,
                  items: list[str]) -> dict[str, float]:
        from pycocotools.cocoeval import COCOeval

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_dt = coco_gt.loadRes(dets)
            coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
            coco_eval.params.catIds = cat_ids
            coco_eval.params.imgIds = img_ids
            coco_eval.params.maxDets = list(self.proposal_nums)
            coco_eval.params.iouThrs = self.iou_thrs
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        self._log('Evaluating bbox...\n' + buf.getvalue().rstrip())

        out: dict[str, float] = {}
        if self.classwise:
            out.update(self._classwise(coco_gt, coco_eval, cat_ids))
        for item in items:
            out[f'bbox_{item}'] = float(f'{coco_eval.stats[coco_stat_index(item, self.proposal_nums)]:.3f}')
        stats = coco_eval.stats[:6]
        self._log('bbox_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in stats))
        return out

    def _classwise(self, coco_gt: Any, coco_eval: Any, cat_ids: list[int]) -> dict[str, float]:
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
            out[f'bbox_{name}_precision'] = round(ap, 3)
        headers = ['category', 'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
        self._log('\n' + format_table(headers, rows))
        return out

    @staticmethod
    def _dump(obj: Any, path: str) -> None:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(obj, f)
