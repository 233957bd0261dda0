"""``DetAnalysisHook``: precision-recall curves and a confusion matrix after testing (and, on request, after
validation), written as PNG and JSON next to the run's log.

Reference: MMDetection 3.x ``tools/analysis_tools/confusion_matrix.py`` (matrix semantics and defaults), which
MMDetection runs offline on a results file; here the same analysis is written by the test run itself.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Sequence

from kiln.dist import all_gather_object, collect_results, is_main_process
from kiln.hooks import Hook
from kiln.registry import HOOKS

from ...evaluation.analysis import gt_from_sample, pred_from_sample, write_analysis

__all__ = ['DetAnalysisHook']


@HOOKS.register_module()
class DetAnalysisHook(Hook):
    """Write an error analysis of the test (and optionally validation) predictions.

    After ``runner.test()`` (``kiln test``) the files go to ``<work_dir>/<timestamp>/analysis/``; with
    ``val=True`` each validation also writes ``analysis/val/`` (overwritten, so after training it holds the
    last validation's):

    * ``pr_curves.png`` / ``.json``: per-class precision-recall curves at IoU ``pr_iou_thr`` (COCOeval's
      interpolated curves; their mean AP is ``coco/bbox_mAP_50``);
    * ``confusion_matrix.png`` / ``.json``: MMDetection's detection confusion matrix (predictions with score >=
      ``score_thr``, matched to ground truth at IoU >= ``tp_iou_thr``; last row / column = background).

    The ground truth is the samples' ``instances`` metainfo (the dataset records, kept by ``PackDetInputs``) or
    their ``gt_instances``; predictions are ``pred_instances`` in the original image. Samples without ground
    truth (a test set without annotations) turn the analysis off for that run, with a warning. In distributed
    runs the samples are gathered and rank 0 writes. kiln's ``configs/_base_/default_runtime.py`` enables it as
    ``default_hooks.analysis`` (set it to None to turn it off); elsewhere add it to a config::

        custom_hooks = [dict(type='DetAnalysisHook', score_thr=0.3, tp_iou_thr=0.5)]

    Args:
        score_thr: confusion matrix: minimum score of a prediction (MMDetection's default 0.3).
        tp_iou_thr: confusion matrix: IoU from which a prediction matches a ground-truth box.
        nms_iou_thr: confusion matrix: optional extra per-class NMS IoU.
        pr_iou_thr: IoU threshold of the precision-recall curves.
        test: analyse ``runner.test()``.
        val: also analyse each validation (into ``analysis/val``).
        out_dir: folder name under the run's log dir (or an absolute path).
        backend: COCOeval implementation of the curves (``'pycocotools'``, ``'faster_coco_eval'``, None = auto).
    """

    priority = 'LOW'

    def __init__(self, score_thr: float = 0.3, tp_iou_thr: float = 0.5, nms_iou_thr: float | None = None,
                 pr_iou_thr: float = 0.5, test: bool = True, val: bool = False, out_dir: str = 'analysis',
                 backend: str | None = None) -> None:
        for name, v in (('score_thr', score_thr), ('tp_iou_thr', tp_iou_thr), ('pr_iou_thr', pr_iou_thr)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f'DetAnalysisHook: {name} must be in [0, 1], got {v}')
        self.score_thr = float(score_thr)
        self.tp_iou_thr = float(tp_iou_thr)
        self.nms_iou_thr = nms_iou_thr
        self.pr_iou_thr = float(pr_iou_thr)
        self.test = test
        self.val = val
        self.out_dir = out_dir
        self.backend = backend
        self._items: list[tuple[dict, dict]] = []
        self._skip: str | None = None  # why this epoch is not analysed (samples without ground truth)

    # ------------------------------------------------------------------ collection
    def _collect(self, runner: Any, outputs: Sequence[Any] | None) -> None:
        if self._skip is not None:
            return
        for sample in outputs or ():
            try:
                self._items.append((gt_from_sample(sample), pred_from_sample(sample)))
            except (KeyError, ValueError) as e:  # e.g. a test set without annotations: nothing to analyse
                self._skip = str(e)
                self._items = []
                runner.logger.warning(f'DetAnalysisHook: no analysis for this run ({e})')
                return

    def before_test_epoch(self, runner: Any) -> None:
        self._items, self._skip = [], None

    def before_val_epoch(self, runner: Any) -> None:
        self._items, self._skip = [], None

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Sequence[Any] | None = None) -> None:
        if self.test:
            self._collect(runner, outputs)

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Sequence[Any] | None = None) -> None:
        if self.val:
            self._collect(runner, outputs)

    # ------------------------------------------------------------------ writing
    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        if self.test:
            self._write(runner, runner.test_loop, '')

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        if self.val:
            self._write(runner, runner.val_loop, 'val')

    def _write(self, runner: Any, loop: Any, sub: str) -> None:
        dataloader, evaluator = loop.dataloader, getattr(loop, 'evaluator', None)
        skipped = all_gather_object(self._skip is not None)  # every rank takes part in the gathers
        items = None if any(skipped) else collect_results(self._items, len(dataloader.dataset))
        self._items = []
        if not is_main_process() or not items:
            return
        meta = getattr(evaluator, 'dataset_meta', None) or getattr(dataloader.dataset, 'metainfo', None) or {}
        classes = meta.get('classes')
        if not classes:
            raise ValueError('DetAnalysisHook: the dataset has no metainfo "classes"; the analysis needs the class '
                             'names')
        out_dir = self.out_dir if osp.isabs(self.out_dir) else osp.join(runner.log_dir, self.out_dir)
        out_dir = osp.join(out_dir, sub) if sub else out_dir
        gts, preds = zip(*items)
        paths = write_analysis(gts, preds, list(classes), out_dir, score_thr=self.score_thr,
                               tp_iou_thr=self.tp_iou_thr, nms_iou_thr=self.nms_iou_thr,
                               pr_iou_thr=self.pr_iou_thr, backend=self.backend)
        runner.logger.info(f'DetAnalysisHook: {len(items)} images analysed; PR curves and confusion matrix written '
                           f'to {out_dir} ({", ".join(osp.basename(p) for p in paths.values())})')
