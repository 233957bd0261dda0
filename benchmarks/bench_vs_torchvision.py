"""kiln's detectors against torchvision's on the same architecture, timed step by step interleaved.

For each family (RetinaNet, FCOS, Faster R-CNN, Mask R-CNN; ResNet-50 FPN, random init, no pretrained weights)
it times

* one training step (forward, losses, backward, SGD step) on a batch of 2 real COCO images (coco128 val with
  polygon masks, resized to 512x512, their boxes / masks / labels scaled along), and
* inference on one real COCO image resized to 800x1216 (``torch.no_grad``, eval mode; kiln's side as its users
  get it from ``kiln test`` and ``DetInferencer``: with each BatchNorm folded into the conv before it, which kiln
  does by default in eval mode without autograd, ``kiln/det/models/layers/conv_bn.py``; torchvision runs its
  BatchNorms separately),

with kiln's batch in ``torch.channels_last`` memory format in both (``DetDataPreprocessor``'s default
``channels_last='auto'`` on the CPU; torchvision gets its default NCHW input),

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

* ``--match-settings`` (default on): the R-CNNs differ by default in RoIAlign sampling (MMDetection
  ``sampling_ratio=0``, adaptive: ``ceil(roi_size / output_size)`` points per bin, torchvision 2x2) and in the
  proposal counts (MMDetection 2000 per level before NMS / 1000 per image after NMS in training, 1000 / 1000 at
  test time; torchvision 2000 / 2000 and 1000 / 1000). With the option kiln takes torchvision's values, so the
  two run the same computation; ``--no-match-settings`` compares each library's defaults. The settings used are
  printed per family.

Remaining differences (kept): RetinaNet's P6 input (C5 in MMDetection, P5 in torchvision), FCOS's centerness
branch and norm, the classifier initialisation (so the number of detections above the 0.05 score threshold, and
with it the mask-pasting work at inference, differs between the random-init models; it is printed).

Each side runs in its own child process (``multiprocessing`` spawn) that builds its model and answers "train
step" / "inference" requests; the parent alternates kiln and torchvision step by step, so the timings stay
interleaved, and reads each child's peak resident set size (``VmHWM``) after its training steps ("peak RSS
train", MiB, includes the model build). Run from the repository root::

    .venv/bin/python benchmarks/bench_vs_torchvision.py [--reps 5] [--warmup 1] [--threads 2] [--families ...] \
        [--no-match-settings] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
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
def build_kiln(family: str, match_settings: bool = False) -> torch.nn.Module:
    """The kiln model of ``family`` (80 classes, all stages trainable, BN in train mode; torchvision's R-CNN
    settings with ``match_settings``, see :func:`match_kiln_settings`); raises if missing."""
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
    if match_settings:
        match_kiln_settings(cfg)
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
def match_kiln_settings(cfg) -> None:
    """Give the kiln config torchvision's R-CNN settings (``--match-settings``): RoIAlign ``sampling_ratio=2`` in
    every RoI extractor and torchvision's proposal counts (per level before NMS, per image after NMS: 2000 / 2000
    in training, 1000 / 1000 at test time)."""
    if 'roi_head' not in cfg:
        return
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        if key in cfg.roi_head:
            cfg.roi_head[key].roi_layer.sampling_ratio = TV_SETTINGS['sampling_ratio']
    cfg.train_cfg.rpn_proposal.update(nms_pre=TV_SETTINGS['train_pre_nms'], max_per_img=TV_SETTINGS['train_post_nms'])
    cfg.test_cfg.rpn.update(nms_pre=TV_SETTINGS['test_pre_nms'], max_per_img=TV_SETTINGS['test_post_nms'])


# torchvision's fasterrcnn/maskrcnn_resnet50_fpn defaults (MultiScaleRoIAlign sampling_ratio=2, rpn_pre_nms_top_n_*
# per level, rpn_post_nms_top_n_* per image)
TV_SETTINGS = dict(sampling_ratio=2, train_pre_nms=2000, train_post_nms=2000, test_pre_nms=1000, test_post_nms=1000)


def kiln_settings(model) -> str:
    """One line: the kiln model's RoIAlign sampling ratio and proposal counts."""
    if not hasattr(model, 'roi_head'):
        return 'n/a'
    sr = model.roi_head.bbox_roi_extractor.roi_layers[0].sampling_ratio
    tr, te = model.train_cfg['rpn_proposal'], model.test_cfg['rpn']
    return (f'RoIAlign sampling_ratio={sr}; proposals train {tr["nms_pre"]} per level / {tr["max_per_img"]} after NMS, '
            f'test {te["nms_pre"]} / {te["max_per_img"]}')


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


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``VmHWM``; ``ru_maxrss`` where /proc is missing), MiB."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(conn, side: str, family: str, threads: int, match: bool, train_items, test_items) -> None:
    """Child process holding one side's model: answers ``build``, ``train``, ``rss``, ``infer``, ``quit`` with
    timings, so that the parent can interleave the two sides step by step while each side's memory is its own."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with_masks = family == 'mask_rcnn'
    try:
        if side == 'kiln':
            model = build_kiln(family, match)
            settings = kiln_settings(model)
        else:
            model = build_torchvision(family, 512, (800, 1216))
            settings = ('RoIAlign sampling_ratio=2; proposals train 2000 per level / 2000 after NMS, test 1000 / 1000'
                        if family in ('faster_rcnn', 'mask_rcnn') else 'defaults')
    except Exception as e:  # a family kiln does not have yet (unregistered type, missing config)
        conn.send(('missing', f'{type(e).__name__}: {str(e).splitlines()[0][:160]}'))
        conn.close()
        return
    conn.send(('ok', sum(p.numel() for p in model.parameters()), settings))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if side == 'kiln':
        train_batch, test_batch = kiln_batch(train_items, with_masks), kiln_batch(test_items, False)
        train_fn = lambda: kiln_train_step(model, opt, train_batch)  # noqa: E731

        def infer_fn():
            return len(model(**model.data_preprocessor(test_batch, False), mode='predict')[0].pred_instances)
    else:
        train_batch, test_batch = tv_batch(train_items, with_masks), tv_batch(test_items, False)[0]
        train_fn = lambda: tv_train_step(model, opt, train_batch)  # noqa: E731

        def infer_fn():
            return len(model(test_batch)[0]['boxes'])
    model.train()
    if side == 'tv':
        set_tv_size(model, 512, 512)
    while True:
        cmd = conn.recv()
        if cmd == 'train':
            conn.send(timed(train_fn))
        elif cmd == 'rss':
            conn.send(peak_rss_mib())
            model.eval()
            if side == 'tv':
                set_tv_size(model, 800, 1333)
        elif cmd == 'infer':
            with torch.no_grad():
                t = time.perf_counter()
                n = infer_fn()
                conn.send((time.perf_counter() - t, n))
        else:
            conn.close()
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=5, help='timed repetitions per measurement (median)')
    ap.add_argument('--warmup', type=int, default=1, help='untimed repetitions first')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--families', nargs='+', default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument('--match-settings', action=argparse.BooleanOptionalAction, default=True,
                    help="R-CNNs: give kiln torchvision's RoIAlign sampling_ratio=2 and proposal counts (default on; "
                         '--no-match-settings compares the library defaults)')
    ap.add_argument('--json', help='also write the results to this file')
    args = ap.parse_args()
    torch.manual_seed(0)
    train_hw, test_hw = (512, 512), (800, 1216)
    train_items = load_coco_images(2, train_hw)
    test_items = load_coco_images(1, test_hw)
    ctx = mp.get_context('spawn')

    results = {}
    for family in args.families:
        procs, conns, info = {}, {}, {}
        for side in ('kiln', 'tv'):
            parent, child = ctx.Pipe()
            procs[side] = ctx.Process(target=worker, args=(child, side, family, args.threads, args.match_settings,
                                                           train_items, test_items), daemon=True)
            procs[side].start()
            child.close()
            conns[side] = parent
            info[side] = parent.recv()  # builds one side at a time
        try:
            if info['kiln'][0] != 'ok':
                results[family] = dict(status=f'missing in kiln: {info["kiln"][1]}')
                print(f'{family}: {results[family]["status"]}', flush=True)
                continue
            if info['tv'][0] != 'ok':
                raise RuntimeError(f'torchvision {family}: {info["tv"][1]}')
            print(f'{family}: kiln settings: {info["kiln"][2]}; torchvision: {info["tv"][2]}', flush=True)
            times = {'kiln_train': [], 'tv_train': [], 'kiln_infer': [], 'tv_infer': []}
            dets = {'kiln': [], 'tv': []}

            def step(cmd: str, key: str, i: int) -> None:
                for side in ('kiln', 'tv'):  # alternate: both sides see the same machine load
                    conns[side].send(cmd)
                    out = conns[side].recv()
                    t = out[0] if cmd == 'infer' else out
                    if i >= args.warmup:
                        times[f'{side}_{key}'].append(t)
                        if cmd == 'infer':
                            dets[side].append(out[1])

            for i in range(args.warmup + args.reps):
                step('train', 'train', i)
            rss = {}
            for side in ('kiln', 'tv'):
                conns[side].send('rss')
                rss[side] = conns[side].recv()
            for i in range(args.warmup + args.reps):
                step('infer', 'infer', i)
        finally:
            for side, conn in conns.items():
                if procs[side].is_alive():
                    try:
                        conn.send('quit')
                    except (BrokenPipeError, OSError):
                        pass
                procs[side].join(timeout=60)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[family] = dict(status='ok', params_kiln=info['kiln'][1], params_torchvision=info['tv'][1],
                               settings_kiln=info['kiln'][2], settings_torchvision=info['tv'][2],
                               **{f'{k}_s': round(v, 3) for k, v in med.items()},
                               train_ratio=round(med['kiln_train'] / med['tv_train'], 2),
                               infer_ratio=round(med['kiln_infer'] / med['tv_infer'], 2),
                               peak_rss_train_kiln_mib=round(rss['kiln']), peak_rss_train_tv_mib=round(rss['tv']),
                               detections_kiln=dets['kiln'][-1], detections_tv=dets['tv'][-1])
        r = results[family]
        print(f'{family}: params kiln {r["params_kiln"]:,} / torchvision {r["params_torchvision"]:,}; '
              f'train step {r["kiln_train_s"]:.2f} s vs {r["tv_train_s"]:.2f} s (x{r["train_ratio"]}); '
              f'peak RSS train {r["peak_rss_train_kiln_mib"]} vs {r["peak_rss_train_tv_mib"]} MiB; '
              f'inference {r["kiln_infer_s"]:.2f} s vs {r["tv_infer_s"]:.2f} s (x{r["infer_ratio"]}; '
              f'{r["detections_kiln"]} vs {r["detections_tv"]} detections)', flush=True)

    print()
    print(f'batch 2 x 512x512 training step, 1 x 800x1216 inference, {args.threads} threads, '
          f'median of {args.reps} after {args.warmup} warm-up, interleaved; '
          f'{"matched R-CNN settings (--match-settings)" if args.match_settings else "library defaults"}')
    print('| family | params kiln / torchvision | train step kiln | torchvision | kiln/tv | peak RSS train kiln | '
          'torchvision | inference kiln | torchvision | kiln/tv |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for family, r in results.items():
        if r['status'] != 'ok':
            print(f'| {family} | {r["status"]} | | | | | | | | |')
            continue
        print(f'| {family} | {r["params_kiln"]:,} / {r["params_torchvision"]:,} | {r["kiln_train_s"]:.2f} s | '
              f'{r["tv_train_s"]:.2f} s | {r["train_ratio"]} | {r["peak_rss_train_kiln_mib"]} MiB | '
              f'{r["peak_rss_train_tv_mib"]} MiB | {r["kiln_infer_s"]:.2f} s | {r["tv_infer_s"]:.2f} s | '
              f'{r["infer_ratio"]} |')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    sys.exit(main())
