"""kiln's detectors against torchvision's on the same architecture, interleaved in one process.

For each family (RetinaNet, FCOS, Faster R-CNN, Mask R-CNN; ResNet-50 FPN, random init, no pretrained weights)
it times

* one training step (forward, losses, backward, SGD step) on a batch of 2 real COCO images (coco128 val with
  polygon masks, resized to 512x512, their boxes / masks / labels scaled along), and
* inference on one real COCO image resized to 800x1216 (``torch.no_grad``, eval mode),

alternating kiln and torchvision step by step so that both see the same machine load, then prints the medians
and the ratio kiln / torchvision. A family kiln cannot build yet is reported as missing.

Settings that make the two sides the same network:

* kiln: the MMDetection-layout base configs in ``configs/_base_/models`` with 80 classes, backbone
  ``init_cfg=None``, ``frozen_stages=-1``, ``norm_eval=False`` (torchvision trains every stage with ordinary
  BatchNorm when it has no pretrained weights);
* torchvision: ``weights=None, weights_backbone=None``; ``num_classes=80`` for RetinaNet / FCOS and ``81`` (80 +
  background, torchvision's convention) for the R-CNNs, so the heads have MMDetection's sizes;
  ``min_size`` / ``max_size`` set so that its transform does not resize the inputs (512x512 training,
  800x1216 inference).

Remaining differences (each library's defaults, kept): RoIAlign sampling (MMDetection adaptive, torchvision 2x2),
proposals per image (MMDetection 1000 after NMS in training, torchvision 2000), RetinaNet's P6 input (C5 in
MMDetection, P5 in torchvision), FCOS's centerness branch and norm. Run from the repository root::

    .venv/bin/python benchmarks/bench_vs_torchvision.py [--reps 5] [--warmup 1] [--threads 2] [--families ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
COCO128 = REPO.parent / 'shared' / 'data' / 'coco128'
FAMILIES = ('retinanet', 'fcos', 'faster_rcnn', 'mask_rcnn')

# MMDetection 3.3.0's retinanet_r50_fpn model settings, used when configs/_base_/models has no RetinaNet file.
RETINANET = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch'),
    neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1,
              add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                 ignore_iof_thr=-1),
                   sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100))

KILN_CONFIGS = {'retinanet': 'retinanet_r50_fpn.py', 'fcos': 'fcos_r50_fpn.py',
                'faster_rcnn': 'faster-rcnn_r50_fpn.py', 'mask_rcnn': 'mask-rcnn_r50_fpn.py'}


# ---------------------------------------------------------------------------------------------------- data
def load_coco_images(n: int, size: tuple[int, int]) -> list[dict]:
    """``n`` coco128 val images with polygon masks, resized (not keeping the ratio) to ``size`` (h, w): RGB uint8
    (h, w, 3), boxes xyxy float32, labels 0..79, masks bool (N, h, w)."""
    from PIL import Image
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(COCO128 / 'annotations' / 'instances_seg_val2017.json'))
    cat_ids = sorted(coco.cats)
    label_of = {c: i % 80 for i, c in enumerate(cat_ids)}
    out = []
    for img_id in sorted(coco.imgs):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])) if not a.get('iscrowd', 0)
                and a['bbox'][2] > 4 and a['bbox'][3] > 4 and isinstance(a['segmentation'], list)]
        if len(anns) < 2:
            continue
        info = coco.imgs[img_id]
        path = next(p for p in (COCO128 / 'images' / 'val2017' / info['file_name'],
                                COCO128 / 'val2017' / info['file_name']) if p.exists())
        h, w = size
        sx, sy = w / info['width'], h / info['height']
        img = np.asarray(Image.open(path).convert('RGB').resize((w, h), Image.BILINEAR))
        boxes = np.array([[a['bbox'][0] * sx, a['bbox'][1] * sy, (a['bbox'][0] + a['bbox'][2]) * sx,
                           (a['bbox'][1] + a['bbox'][3]) * sy] for a in anns], dtype=np.float32)
        masks = []
        for a in anns:
            polys = [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * [sx, sy]).reshape(-1).tolist()
                     for p in a['segmentation'] if len(p) >= 6]
            masks.append(mask_util.decode(mask_util.merge(mask_util.frPyObjects(polys, h, w))).astype(bool))
        out.append(dict(img=img, boxes=boxes, labels=np.array([label_of[a['category_id']] for a in anns]),
                        masks=np.stack(masks)))
        if len(out) == n:
            return out
    raise RuntimeError(f'coco128: fewer than {n} usable images')


def kiln_batch(items: list[dict], with_masks: bool) -> dict:
    from kiln.det.structures import DetDataSample
    from kiln.det.structures.mask import BitmapMasks
    from kiln.structures import InstanceData
    inputs, samples = [], []
    for it in items:
        h, w = it['img'].shape[:2]
        inputs.append(torch.from_numpy(np.ascontiguousarray(it['img'][..., ::-1].transpose(2, 0, 1))))  # BGR
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        gt = InstanceData(bboxes=torch.from_numpy(it['boxes']), labels=torch.from_numpy(it['labels']).long())
        if with_masks:
            gt.masks = BitmapMasks(it['masks'].astype(np.uint8), h, w)
        s.gt_instances = gt
        s.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def tv_batch(items: list[dict], with_masks: bool) -> tuple[list[torch.Tensor], list[dict]]:
    images, targets = [], []
    for it in items:
        images.append(torch.from_numpy(it['img'].transpose(2, 0, 1).copy()).float() / 255)
        t = dict(boxes=torch.from_numpy(it['boxes']), labels=torch.from_numpy(it['labels']).long() + 1)
        if with_masks:
            t['masks'] = torch.from_numpy(it['masks'].astype(np.uint8))
        targets.append(t)
    return images, targets


# ---------------------------------------------------------------------------------------------------- models
def build_kiln(family: str) -> torch.nn.Module:
    """The kiln model of ``family`` (80 classes, all stages trainable, BN in train mode); raises if missing."""
    from kiln.config import Config
    from kiln.registry import MODELS, init_default_scope
    init_default_scope('kiln.det')
    path = REPO / 'configs' / '_base_' / 'models' / KILN_CONFIGS[family]
    cfg = Config.fromfile(str(path)).model if path.exists() else Config(dict(model=RETINANET)).model
    cfg.backbone.update(init_cfg=None, frozen_stages=-1, norm_eval=False)
    if 'roi_head' in cfg:
        cfg.roi_head.bbox_head.num_classes = 80
        if 'mask_head' in cfg.roi_head:
            cfg.roi_head.mask_head.num_classes = 80
    else:
        cfg.bbox_head.num_classes = 80
    return MODELS.build(cfg)


def build_torchvision(family: str, train_size: int, test_size: tuple[int, int]) -> torch.nn.Module:
    from torchvision.models import detection as tvd
    kw = dict(weights=None, weights_backbone=None, min_size=train_size, max_size=train_size)
    if family == 'retinanet':
        return tvd.retinanet_resnet50_fpn(num_classes=80, **kw)
    if family == 'fcos':
        return tvd.fcos_resnet50_fpn(num_classes=80, **kw)
    if family == 'faster_rcnn':
        return tvd.fasterrcnn_resnet50_fpn(num_classes=81, **kw)
    return tvd.maskrcnn_resnet50_fpn(num_classes=81, **kw)


def set_tv_size(model: torch.nn.Module, min_size: int, max_size: int) -> None:
    model.transform.min_size = (min_size,)
    model.transform.max_size = max_size


# ---------------------------------------------------------------------------------------------------- steps
def kiln_train_step(model, opt, batch) -> None:
    data = model.data_preprocessor(batch, True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def tv_train_step(model, opt, batch) -> None:
    images, targets = batch
    loss = sum(model(images, targets).values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=5, help='timed repetitions per measurement (median)')
    ap.add_argument('--warmup', type=int, default=1, help='untimed repetitions first')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--families', nargs='+', default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument('--json', help='also write the results to this file')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_hw, test_hw = (512, 512), (800, 1216)
    train_items = load_coco_images(2, train_hw)
    test_items = load_coco_images(1, test_hw)

    results = {}
    for family in args.families:
        with_masks = family == 'mask_rcnn'
        try:
            kiln_model = build_kiln(family)
        except Exception as e:  # a family kiln does not have yet (unregistered type, missing config)
            results[family] = dict(status=f'missing in kiln: {type(e).__name__}: {str(e).splitlines()[0][:160]}')
            print(f'{family}: {results[family]["status"]}', flush=True)
            continue
        tv_model = build_torchvision(family, train_hw[0], test_hw)
        params = (sum(p.numel() for p in kiln_model.parameters()), sum(p.numel() for p in tv_model.parameters()))
        k_opt = torch.optim.SGD(kiln_model.parameters(), lr=1e-4, momentum=0.9)
        t_opt = torch.optim.SGD(tv_model.parameters(), lr=1e-4, momentum=0.9)
        k_train, t_train = kiln_batch(train_items, with_masks), tv_batch(train_items, with_masks)
        k_test, t_test = kiln_batch(test_items, False), tv_batch(test_items, False)[0]

        times = {'kiln_train': [], 'tv_train': [], 'kiln_infer': [], 'tv_infer': []}
        kiln_model.train()
        tv_model.train()
        set_tv_size(tv_model, *train_hw)
        for i in range(args.warmup + args.reps):
            k = timed(lambda: kiln_train_step(kiln_model, k_opt, k_train))
            t = timed(lambda: tv_train_step(tv_model, t_opt, t_train))
            if i >= args.warmup:
                times['kiln_train'].append(k)
                times['tv_train'].append(t)
        kiln_model.eval()
        tv_model.eval()
        set_tv_size(tv_model, test_hw[0], 1333)
        with torch.no_grad():
            for i in range(args.warmup + args.reps):
                k = timed(lambda: kiln_model(**kiln_model.data_preprocessor(k_test, False), mode='predict'))
                t = timed(lambda: tv_model(t_test))
                if i >= args.warmup:
                    times['kiln_infer'].append(k)
                    times['tv_infer'].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[family] = dict(status='ok', params_kiln=params[0], params_torchvision=params[1],
                               **{f'{k}_s': round(v, 3) for k, v in med.items()},
                               train_ratio=round(med['kiln_train'] / med['tv_train'], 2),
                               infer_ratio=round(med['kiln_infer'] / med['tv_infer'], 2))
        r = results[family]
        print(f'{family}: params kiln {params[0]:,} / torchvision {params[1]:,}; '
              f'train step {r["kiln_train_s"]:.2f} s vs {r["tv_train_s"]:.2f} s (x{r["train_ratio"]}); '
              f'inference {r["kiln_infer_s"]:.2f} s vs {r["tv_infer_s"]:.2f} s (x{r["infer_ratio"]})', flush=True)

    print()
    print(f'batch 2 x 512x512 training step, 1 x 800x1216 inference, {args.threads} threads, '
          f'median of {args.reps} after {args.warmup} warm-up, interleaved')
    print('| family | params kiln / torchvision | train step kiln | torchvision | kiln/tv | inference kiln | '
          'torchvision | kiln/tv |')
    print('|---|---|---|---|---|---|---|---|')
    for family, r in results.items():
        if r['status'] != 'ok':
            print(f'| {family} | {r["status"]} | | | | | | |')
            continue
        print(f'| {family} | {r["params_kiln"]:,} / {r["params_torchvision"]:,} | {r["kiln_train_s"]:.2f} s | '
              f'{r["tv_train_s"]:.2f} s | {r["train_ratio"]} | {r["kiln_infer_s"]:.2f} s | {r["tv_infer_s"]:.2f} s | '
              f'{r["infer_ratio"]} |')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    sys.exit(main())
