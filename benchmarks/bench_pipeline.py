"""Data pipeline throughput: kiln's detection transforms against the same pipelines in torchvision.transforms.v2.

Usage: ``.venv/bin/python benchmarks/bench_pipeline.py [-n N] [--rounds R] [--wall]``.

One process, one thread (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``), so images/s is per core.
Both sides start from the same BCCD records (``VOCDataset.get_data_info``: image path, boxes, labels; 640x480
JPEGs) and seed the global generators per sample as kiln's dataloader does, and produce the same thing: a
(3, H, W) uint8 tensor plus float32 xyxy boxes and int64 labels.

* ``bccd``: the BCCD train pipeline (``configs/_base_/datasets/bccd_detection.py``): decode, boxes,
  ``Resize(scale=(640, 480), keep_ratio=True)``, ``RandomFlip(0.5)``, pack.
  kiln: ``LoadImageFromFile`` (OpenCV decode), ``LoadAnnotations``, ``Resize``, ``RandomFlip``, ``PackDetInputs``.
  torchvision: ``torchvision.io.decode_jpeg``, ``tv_tensors.BoundingBoxes``, ``v2.Resize((480, 640))``,
  ``v2.RandomHorizontalFlip(0.5)``, ``v2.ToDtype`` for the boxes.
* ``mosaic``: YOLOX-style ``Mosaic(img_scale=(640, 480))`` + ``RandomAffine(border=(-320, -240))`` +
  ``MixUp(img_scale=(640, 480))``, 5 decoded images per sample, 640x480 output.
  kiln: ``MultiImageMixDataset`` over the dataset (Load + LoadAnnotations) with those transforms and
  ``PackDetInputs``. torchvision has no detection Mosaic / MixUp: the same steps are written with v2 functional
  kernels (``F.resize`` on image and ``BoundingBoxes``, canvas paste, ``F.affine`` + ``F.crop`` with boxes,
  ``v2.SanitizeBoundingBoxes``, 50/50 blend with a resized, maybe flipped second image).

Times are process CPU time (``time.process_time``; ``--wall`` for wall-clock time), less disturbed by other jobs
on a shared machine. Each pipeline runs over N samples per round, alternating sides, for R rounds after a warm-up;
the best round is reported.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _records(n: int) -> list[dict]:
    from kiln.det.datasets import VOCDataset
    ds = VOCDataset(data_root=str(ROOT / 'data' / 'bccd') + '/', ann_file='ImageSets/Main/train.txt',
                    data_prefix=dict(sub_data_root=''), metainfo=dict(classes=('RBC', 'WBC', 'Platelets')),
                    pipeline=[])
    return [ds.get_data_info(i % len(ds)) for i in range(n)]


# ---------------------------------------------------------------------------------------------- kiln
def kiln_bccd():
    from kiln.dataset import Compose
    return Compose([dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                    dict(type='Resize', scale=(640, 480), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
                    dict(type='PackDetInputs')])


class _Records(torch.utils.data.Dataset):
    """The records as a dataset whose own pipeline is Load + LoadAnnotations (what MultiImageMixDataset wraps)."""

    def __init__(self, records: list[dict]) -> None:
        from kiln.dataset import Compose
        self.records = records
        self.pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)])

    def __len__(self) -> int:
        return len(self.records)

    def get_data_info(self, i: int) -> dict:
        return dict(self.records[i])

    def __getitem__(self, i: int) -> dict:
        return self.pipeline(self.get_data_info(i))


def kiln_mosaic(records: list[dict]):
    from kiln.det.datasets import MultiImageMixDataset
    return MultiImageMixDataset(_Records(records), pipeline=[
        dict(type='Mosaic', img_scale=(640, 480), pad_val=114.0),
        dict(type='RandomAffine', scaling_ratio_range=(0.5, 1.5), border=(-320, -240)),
        dict(type='MixUp', img_scale=(640, 480), ratio_range=(0.8, 1.6), pad_val=114.0),
        dict(type='PackDetInputs')])


# ---------------------------------------------------------------------------------------------- torchvision
def _tv_load(rec: dict):
    from torchvision import tv_tensors
    from torchvision.io import decode_jpeg, read_file
    img = tv_tensors.Image(decode_jpeg(read_file(rec['img_path'])))
    boxes = [inst['bbox'] for inst in rec['instances']]
    labels = torch.tensor([inst['bbox_label'] for inst in rec['instances']], dtype=torch.int64)
    bb = tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format='XYXY',
                                  canvas_size=tuple(img.shape[-2:]))
    return img, bb, labels


def tv_bccd():
    from torchvision.transforms import v2
    t = v2.Compose([v2.Resize((480, 640), antialias=True), v2.RandomHorizontalFlip(0.5)])

    def run(rec: dict) -> dict:
        img, bb, labels = _tv_load(rec)
        img, bb = t(img, bb)
        return dict(inputs=img.as_subclass(torch.Tensor).contiguous(),
                    bboxes=bb.as_subclass(torch.Tensor), labels=labels)
    return run


def tv_mosaic(records: list[dict]):
    import torchvision.transforms.v2.functional as F
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    W, H = 640, 480
    sanitize = v2.SanitizeBoundingBoxes(min_size=1.0)

    def resize(img, bb, scale):
        h, w = img.shape[-2:]
        size = [int(h * scale), int(w * scale)]
        return F.resize(img, size, antialias=False), F.resize(bb, size)

    def run(rec: dict) -> dict:
        idx = [int(np.random.randint(0, len(records))) for _ in range(3)]
        samples = [_tv_load(rec)] + [_tv_load(records[i]) for i in idx]
        canvas = torch.full((3, 2 * H, 2 * W), 114, dtype=torch.uint8)
        cx, cy = int(np.random.uniform(0.5, 1.5) * W), int(np.random.uniform(0.5, 1.5) * H)
        boxes, labels = [], []
        for k, (img, bb, lab) in enumerate(samples):
            s = min(H / img.shape[-2], W / img.shape[-1])
            img, bb = resize(img, bb, s)
            h, w = img.shape[-2:]
            x1 = max(cx - w, 0) if k in (0, 2) else cx
            y1 = max(cy - h, 0) if k in (0, 1) else cy
            x2, y2 = min(x1 + w, 2 * W) if k in (1, 3) else cx, min(y1 + h, 2 * H) if k in (2, 3) else cy
            cx1, cy1 = (w - (x2 - x1)) if k in (0, 2) else 0, (h - (y2 - y1)) if k in (0, 1) else 0
            canvas[:, y1:y2, x1:x2] = img[:, cy1:cy1 + (y2 - y1), cx1:cx1 + (x2 - x1)]
            boxes.append(bb.as_subclass(torch.Tensor) + torch.tensor([x1 - cx1, y1 - cy1] * 2, dtype=torch.float32))
            labels.append(lab)
        img = tv_tensors.Image(canvas)
        bb = tv_tensors.BoundingBoxes(torch.cat(boxes).clamp(min=0), format='XYXY', canvas_size=(2 * H, 2 * W))
        bb = F.clamp_bounding_boxes(bb)
        # affine about the origin, then keep the top-left (H, W) window (the border=(-W/2, -H/2) of RandomAffine)
        angle = float(np.random.uniform(-10, 10))
        scale = float(np.random.uniform(0.5, 1.5))
        shear = [float(np.random.uniform(-2, 2)), float(np.random.uniform(-2, 2))]
        tx, ty = float(np.random.uniform(-0.1, 0.1) * W), float(np.random.uniform(-0.1, 0.1) * H)
        img = F.affine(img, angle=angle, translate=[tx, ty], scale=scale, shear=shear, center=[0, 0], fill=114)
        bb = F.affine(bb, angle=angle, translate=[tx, ty], scale=scale, shear=shear, center=[0, 0])
        img, bb = F.crop(img, 0, 0, H, W), F.crop(bb, 0, 0, H, W)
        out = sanitize(dict(image=img, boxes=bb, labels=torch.cat(labels)))
        img, bb, labels = out['image'], out['boxes'], out['labels']
        # MixUp with a fifth image
        img2, bb2, lab2 = _tv_load(records[int(np.random.randint(0, len(records)))])
        jit = float(np.random.uniform(0.8, 1.6))
        flip = np.random.uniform(0, 1) > 0.5
        s = min(H / img2.shape[-2], W / img2.shape[-1]) * jit
        img2, bb2 = resize(img2, bb2, s)
        if flip:
            img2, bb2 = F.horizontal_flip(img2), F.horizontal_flip(bb2)
        h2, w2 = img2.shape[-2:]
        y0 = int(np.random.randint(0, h2 - H)) if h2 > H else 0
        x0 = int(np.random.randint(0, w2 - W)) if w2 > W else 0
        img2, bb2 = F.crop(img2, y0, x0, H, W), F.crop(bb2, y0, x0, H, W)  # pads with 0 beyond the image
        mixed = ((img.as_subclass(torch.Tensor).to(torch.int16) + img2.as_subclass(torch.Tensor)) // 2)
        out2 = sanitize(dict(boxes=bb2, labels=lab2))
        return dict(inputs=mixed.to(torch.uint8).contiguous(),
                    bboxes=torch.cat([bb.as_subclass(torch.Tensor), out2['boxes'].as_subclass(torch.Tensor)]),
                    labels=torch.cat([labels, out2['labels']]))
    return run


# ---------------------------------------------------------------------------------------------- timing
def _time(fn, n: int, clock) -> float:
    from kiln.dataset.seeding import SampleIndex, seed_sample
    t0 = clock()
    for i in range(n):
        seed_sample(SampleIndex(i, 0, 0))
        out = fn(i)
        assert out['inputs'].dtype == torch.uint8 and out['inputs'].shape[0] == 3
    return n / (clock() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-n', type=int, default=100, help='samples per round (default 100)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--wall', action='store_true', help='wall-clock instead of process CPU time')
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    clock = time.perf_counter if args.wall else time.process_time
    records = _records(args.n)
    kb, tb = kiln_bccd(), tv_bccd()
    km, tm = kiln_mosaic(records), tv_mosaic(records)
    cases = {
        ('bccd', 'kiln'): lambda i: kb(dict(records[i])),
        ('bccd', 'torchvision.v2'): lambda i: tb(records[i]),
        ('mosaic', 'kiln'): lambda i: km[i],
        ('mosaic', 'torchvision.v2'): lambda i: tm(records[i]),
    }
    for fn in cases.values():  # warm-up (page cache, lazy imports)
        _time(fn, min(10, args.n), clock)
    best: dict = {}
    for _ in range(args.rounds):
        for key, fn in cases.items():
            best[key] = max(best.get(key, 0.0), _time(fn, args.n, clock))
    kind = 'wall' if args.wall else 'CPU'
    print(f'images/s per core ({kind} time, best of {args.rounds} rounds of {args.n} BCCD samples, 1 thread, '
          f'pid {os.getpid()})')
    print(f'{"pipeline":<48} {"kiln":>8} {"tv.v2":>8} {"kiln/tv":>8}')
    names = {'bccd': 'decode+Resize(640x480)+RandomFlip+pack',
             'mosaic': 'Mosaic+RandomAffine+MixUp (5 decodes)'}
    for p in ('bccd', 'mosaic'):
        k, t = best[(p, 'kiln')], best[(p, 'torchvision.v2')]
        print(f'{names[p]:<48} {k:8.1f} {t:8.1f} {k / t:8.2f}')


if __name__ == '__main__':
    main()
