"""``kiln analyze-results CONFIG [CHECKPOINT] [--pred FILE] [--topk K] [--show-dir DIR]``: the best and worst
test images.

Every image of the config's ``test_dataloader`` gets its own mAP: COCO AP over IoU 0.50:0.05:0.95, averaged
over the classes present in that image (``COCOeval`` run on the image alone, see
:func:`kiln.det.evaluation.analysis.image_ap`). The ``topk`` highest go to ``<show-dir>/good/``, the ``topk``
lowest to ``<show-dir>/bad/`` as ``<image name>_<mAP>.png`` drawings (ground truth left, predictions with
score > ``--show-score-thr`` right, :class:`~kiln.det.visualization.DetLocalVisualizer`), and every score to
``<show-dir>/image_ap.json``. When 2 * topk exceeds the number of images, topk becomes half of it.

Predictions come from running CHECKPOINT on the test set, or from ``--pred``: a COCO results json (a list of
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``), e.g. the ``<prefix>.bbox.json`` written by
``kiln test CONFIG CKPT --cfg-options test_evaluator.format_only=True test_evaluator.outfile_prefix=PREFIX``.
``image_id`` is matched to the records' ``img_id``; ``category_id`` is mapped through the dataset's
``cat_ids`` (COCO datasets) or taken as the class index.

Reference: MMDetection 3.x ``tools/analysis_tools/analyze_results.py`` (ranking semantics, output layout),
re-implemented.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Any, Sequence

import numpy as np

from kiln.cli._common import CLIError, add_cfg_options, build_runner, load_config
from kiln.hooks import Hook

__all__ = ['add_parser', 'load_coco_predictions', 'rank_images', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``analyze-results`` sub-command."""
    p = subparsers.add_parser('analyze-results', help='draw the k best and worst test images by per-image mAP',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='config file (its test_dataloader is analysed)')
    p.add_argument('checkpoint', nargs='?', help='checkpoint to run on the test set (or give --pred)')
    p.add_argument('--pred', metavar='FILE', help='COCO results json instead of running a checkpoint')
    p.add_argument('--topk', type=int, default=20, help='images drawn at each end (default 20)')
    p.add_argument('--show-dir', default='analyze_results', help='output folder (default ./analyze_results)')
    p.add_argument('--show-score-thr', type=float, default=0.0, help='minimum score of drawn predictions')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def rank_images(gts: Sequence[dict], preds: Sequence[dict], classes: Sequence[str], topk: int,
                backend: str | None = None) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[float]]:
    """Per-image mAP (:func:`~kiln.det.evaluation.analysis.image_ap`) and the best / worst ``topk`` images.

    Returns:
        ``(good, bad, aps)``: ``good`` = the ``topk`` highest ``(index, mAP)`` in ascending order (the best
        last), ``bad`` = the ``topk`` lowest ascending (the worst first); ties keep dataset order. ``topk`` is
        cut to ``len // 2`` when ``2 * topk`` exceeds the number of images.

    Raises:
        ValueError: ``topk < 1``.
    """
    from kiln.det.evaluation.analysis import image_ap
    if topk < 1:
        raise ValueError(f'topk must be >= 1, got {topk}')
    aps = [image_ap(gt, pred, classes, backend=backend) for gt, pred in zip(gts, preds)]
    if 2 * topk > len(aps):
        topk = max(len(aps) // 2, 1)
    order = sorted(range(len(aps)), key=lambda i: aps[i])  # stable: ties in dataset order
    ranked = [(i, aps[i]) for i in order]
    return ranked[-topk:], ranked[:topk], aps


def load_coco_predictions(path: str, records: Sequence[dict], cat_ids: Sequence[int] | None) -> list[dict]:
    """Per-record predictions (``bboxes`` xyxy float32, ``scores``, ``labels``) from a COCO results json.

    Raises:
        CLIError: unreadable file, an entry without the COCO result keys, an ``image_id`` not in the records or a
            ``category_id`` that is no class (each names the entry index).
    """
    try:
        with open(path, encoding='utf-8') as f:
            results = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CLIError(f'--pred {path!r}: cannot read a json file ({e})') from None
    if not isinstance(results, list):
        raise CLIError(f'--pred {path!r}: expected a list of COCO results, got {type(results).__name__}')
    index = {str(r['img_id']): i for i, r in enumerate(records)}
    label_of = {c: i for i, c in enumerate(cat_ids)} if cat_ids is not None else None
    per_image: list[list] = [[] for _ in records]
    for n, res in enumerate(results):
        if not isinstance(res, dict) or not {'image_id', 'category_id', 'bbox', 'score'} <= set(res):
            raise CLIError(f'--pred {path!r}: entry {n} needs image_id, category_id, bbox, score; got {res!r:.120}')
        i = index.get(str(res['image_id']))
        if i is None:
            raise CLIError(f'--pred {path!r}: entry {n}: image_id {res["image_id"]!r} is not an image of the test '
                           f'set (e.g. {list(index)[:3]})')
        label = label_of.get(res['category_id']) if label_of is not None else int(res['category_id'])
        if label is None or not 0 <= label < (len(label_of) if label_of is not None else 1 << 30):
            raise CLIError(f'--pred {path!r}: entry {n}: category_id {res["category_id"]!r} is not a class')
        x, y, w, h = (float(v) for v in res['bbox'])
        per_image[i].append((x, y, x + w, y + h, float(res['score']), label))
    out = []
    for dets in per_image:
        arr = np.asarray(dets, dtype=np.float64).reshape(-1, 6)
        out.append(dict(bboxes=arr[:, :4].astype(np.float32), scores=arr[:, 4].astype(np.float32),
                        labels=arr[:, 5].astype(np.int64)))
    return out


class _Collect(Hook):
    """Keeps ``(img_path, gt, pred)`` of every test sample, in the order the test loop yields them."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.items: list[tuple[str, dict, dict]] = []

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        from kiln.det.evaluation.analysis import gt_from_sample, pred_from_sample
        for s in outputs or ():
            self.items.append((s.get('img_path'), gt_from_sample(s), pred_from_sample(s)))


def _predict_with_checkpoint(cfg: Any, checkpoint: str) -> list[tuple[str, dict, dict]]:
    if not osp.isfile(checkpoint) and '://' not in checkpoint:
        raise CLIError(f'checkpoint file {checkpoint!r} does not exist')
    cfg.load_from, cfg.resume = checkpoint, False
    runner = build_runner(cfg)
    collector = _Collect()
    runner.register_hook(collector, 'LOW')
    runner.test()
    return collector.items


def _draw(records: Sequence[tuple[str, dict, dict]], chosen: Sequence[tuple[int, float]], classes: Sequence[str],
          palette: Any, out_dir: str, score_thr: float) -> list[str]:
    import torch

    from kiln.det.datasets.file_io import get_bytes
    from kiln.det.datasets.transforms.loading import imfrombytes
    from kiln.det.structures import DetDataSample
    from kiln.det.visualization import DetLocalVisualizer
    from kiln.structures import InstanceData
    os.makedirs(out_dir, exist_ok=True)
    vis = DetLocalVisualizer(name='analyze_results')
    vis.dataset_meta = dict(classes=tuple(classes), palette=palette)
    files = []
    for idx, ap in chosen:
        img_path, gt, pred = records[idx]
        image = imfrombytes(get_bytes(img_path), 'color', channel_order='rgb')
        sample = DetDataSample()
        keep = gt['ignore_flags'] == 0 if 'ignore_flags' in gt else slice(None)
        sample.gt_instances = InstanceData(bboxes=torch.as_tensor(gt['bboxes'][keep], dtype=torch.float32),
                                           labels=torch.as_tensor(gt['labels'][keep]))
        sample.pred_instances = InstanceData(bboxes=torch.as_tensor(pred['bboxes']),
                                             scores=torch.as_tensor(pred['scores']),
                                             labels=torch.as_tensor(pred['labels']))
        out_file = osp.join(out_dir, f'{osp.splitext(osp.basename(img_path))[0]}_{ap:.3f}.png')
        vis.add_datasample(osp.basename(img_path), image, sample, pred_score_thr=score_thr, out_file=out_file)
        files.append(out_file)
    return files


def run(args: argparse.Namespace) -> int:
    if (args.checkpoint is None) == (args.pred is None):
        raise CLIError('give either a CHECKPOINT or --pred FILE (not both)')
    if args.topk < 1:
        raise CLIError(f'--topk must be >= 1, got {args.topk}')
    cfg = load_config(args.config, args.cfg_options, command='analyze-results')
    if not cfg.get('test_dataloader'):
        raise CLIError(f'{args.config}: the config has no test_dataloader')
    from kiln.det.evaluation.analysis import gt_from_sample
    from kiln.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'kiln.det'))
    if args.pred is not None:
        ds_cfg = dict(cfg.test_dataloader['dataset'])
        ds_cfg['pipeline'] = []
        dataset = DATASETS.build(ds_cfg)
        records = [dataset.get_data_info(i) for i in range(len(dataset))]
        preds = load_coco_predictions(args.pred, records, getattr(dataset, 'cat_ids', None))
        items = [(r['img_path'], gt_from_sample(r), p) for r, p in zip(records, preds)]
        meta = dataset.metainfo
    else:
        cfg.work_dir = args.show_dir
        items = _predict_with_checkpoint(cfg, args.checkpoint)
        ds_cfg = dict(cfg.test_dataloader['dataset'], pipeline=[], lazy_init=True)
        meta = DATASETS.build(ds_cfg).metainfo
    classes = meta.get('classes')
    if not classes or not items:
        raise CLIError('the test set has no images or no classes')
    good, bad, aps = rank_images([g for _, g, _ in items], [p for _, _, p in items], list(classes), args.topk)
    good_files = _draw(items, good[::-1], classes, meta.get('palette'), osp.join(args.show_dir, 'good'),
                       args.show_score_thr)
    bad_files = _draw(items, bad, classes, meta.get('palette'), osp.join(args.show_dir, 'bad'), args.show_score_thr)
    summary = dict(metric='per-image COCO mAP@[0.50:0.95] over the classes in the image',
                   images=[dict(img_path=p, mAP=round(a, 4)) for (p, _, _), a in zip(items, aps)],
                   good=[dict(img_path=items[i][0], mAP=round(a, 4)) for i, a in good[::-1]],
                   bad=[dict(img_path=items[i][0], mAP=round(a, 4)) for i, a in bad])
    os.makedirs(args.show_dir, exist_ok=True)
    with open(osp.join(args.show_dir, 'image_ap.json'), 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1)
    print(f'{len(items)} images, mean per-image mAP {float(np.mean(aps)):.3f}')
    print(f'best {len(good)}: ' + ', '.join(f'{osp.basename(items[i][0])} {a:.3f}' for i, a in good[::-1]))
    print(f'worst {len(bad)}: ' + ', '.join(f'{osp.basename(items[i][0])} {a:.3f}' for i, a in bad))
    print(f'drawings in {osp.join(args.show_dir, "good")} and {osp.join(args.show_dir, "bad")} '
          f'({len(good_files) + len(bad_files)} files), scores in {osp.join(args.show_dir, "image_ap.json")}')
    return 0
