"""Time ``CocoMetric.compute_metrics`` with the pycocotools and faster-coco-eval backends.

Usage: ``.venv/bin/python benchmarks/bench_coco_eval.py [--images N] [--dets D] [--repeats R] [--skip-large]``.

Two prediction sets, both evaluated as ``metric='bbox'`` without ``ann_file`` (ground truth from the samples):

* BCCD test (72 real images, 4 888 boxes): each ground-truth box jittered by N(0, 8 % of its size) with a high
  score, plus random low-score boxes up to 100 detections per image (what a detector with ``max_per_img=100``
  returns);
* synthetic: N images (default 5000) with 1-15 ground-truth boxes of 80 classes and D detections each (default
  100: jittered copies of the ground truth, then random boxes).

The time covers what ``compute_metrics`` does: building the ground-truth ``COCO``, ``loadRes``, ``evaluate``,
``accumulate`` and ``summarize``; the two backends must return the same dict (checked). Median of R runs for
BCCD, one run for the large set.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from kiln.det.evaluation import CocoMetric

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ('pycocotools', 'faster_coco_eval')
_SILENT = logging.getLogger('bench_coco_eval.silent')
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def _image(rng: np.random.Generator, img_id, h: int, w: int, gt_boxes: np.ndarray, gt_labels: np.ndarray,
           num_classes: int, dets: int) -> dict:
    """One sample dict: the ground truth as ``instances`` and ``dets`` predictions (jittered ground truth with
    scores in [0.5, 1), then random boxes with scores in [0, 0.5))."""
    n = min(len(gt_boxes), dets)
    wh = np.tile(gt_boxes[:n, 2:] - gt_boxes[:n, :2], 2)
    tp = gt_boxes[:n] + rng.normal(0, 0.08, (n, 4)) * wh
    k = dets - n
    xy = rng.uniform(0, [w * 0.8, h * 0.8], (k, 2))
    rand = np.concatenate([xy, xy + rng.uniform(8, [w * 0.2, h * 0.2], (k, 2))], 1)
    boxes = np.concatenate([tp, rand]).astype(np.float32)
    scores = np.concatenate([rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, k)]).astype(np.float32)
    labels = np.concatenate([gt_labels[:n], rng.integers(0, num_classes, k)]).astype(np.int64)
    instances = [dict(bbox=b.tolist(), bbox_label=int(l), ignore_flag=0) for b, l in zip(gt_boxes, gt_labels)]
    return dict(img_id=img_id, ori_shape=(h, w), instances=instances,
                pred_instances=dict(bboxes=boxes, scores=scores, labels=labels))


def bccd_samples(seed: int = 0) -> tuple[list[dict], tuple[str, ...]]:
    from kiln.det.datasets import VOCDataset
    classes = ('RBC', 'WBC', 'Platelets')
    ds = VOCDataset(data_root=str(REPO / 'data' / 'bccd'), ann_file='ImageSets/Main/test.txt',
                    data_prefix=dict(sub_data_root=''), metainfo=dict(classes=classes), test_mode=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        boxes = np.array([x['bbox'] for x in rec['instances']], dtype=np.float64).reshape(-1, 4)
        labels = np.array([x['bbox_label'] for x in rec['instances']], dtype=np.int64)
        out.append(_image(rng, rec['img_id'], rec['height'], rec['width'], boxes, labels, len(classes), 100))
    return out, classes


def synthetic_samples(images: int, dets: int, seed: int = 0) -> tuple[list[dict], tuple[str, ...]]:
    classes = tuple(f'class{i}' for i in range(80))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(images):
        h, w = 480, 640
        n = int(rng.integers(1, 16))
        xy = rng.uniform(0, [w - 100, h - 100], (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 100, (n, 2))], 1)
        out.append(_image(rng, i, h, w, boxes, rng.integers(0, 80, n), 80, dets))
    return out, classes


def time_backend(backend: str, samples: list[dict], classes: tuple[str, ...]) -> tuple[float, dict]:
    metric = CocoMetric(metric='bbox', backend=backend, logger=_SILENT)
    metric.dataset_meta = dict(classes=classes)
    metric.process(None, samples)
    t0 = time.perf_counter()
    res = metric.compute_metrics(metric.results)
    return time.perf_counter() - t0, res


def compare(name: str, samples: list[dict], classes: tuple[str, ...], repeats: int) -> None:
    times, results = {}, {}
    for backend in BACKENDS:
        runs = [time_backend(backend, samples, classes) for _ in range(repeats)]
        times[backend] = statistics.median(t for t, _ in runs)
        results[backend] = runs[0][1]
    if results['pycocotools'] != results['faster_coco_eval']:
        sys.exit(f'{name}: the backends disagree:\n{results}')
    n_det = sum(len(s['pred_instances']['scores']) for s in samples)
    print(f'{name}: {len(samples)} images, {n_det} detections, bbox_mAP {results["pycocotools"]["bbox_mAP"]:.3f}: '
          f'pycocotools {times["pycocotools"]:.2f} s, faster_coco_eval {times["faster_coco_eval"]:.2f} s '
          f'-> {times["pycocotools"] / times["faster_coco_eval"]:.1f}x (median of {repeats}; same metric dict)',
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=5000, help='images of the synthetic set')
    parser.add_argument('--dets', type=int, default=100, help='detections per synthetic image')
    parser.add_argument('--repeats', type=int, default=5, help='runs per backend on BCCD (median)')
    parser.add_argument('--skip-large', action='store_true', help='only the BCCD set')
    args = parser.parse_args()
    compare('BCCD test', *bccd_samples(), repeats=args.repeats)
    if not args.skip_large:
        compare('synthetic', *synthetic_samples(args.images, args.dets), repeats=1)


if __name__ == '__main__':
    main()
