"""Real-data fixtures of the analysis tests: BCCD records and deterministic 'predictions' made from their ground
truth (no training)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kiln.det.datasets import VOCDataset
from kiln.det.structures import DetDataSample
from kiln.structures import InstanceData

REPO = Path(__file__).resolve().parents[3]
BCCD = REPO / 'data' / 'bccd'
BALLOON_VAL = REPO.parent / 'shared' / 'data' / 'balloon' / 'annotations' / 'instances_val.json'
CLASSES = ('RBC', 'WBC', 'Platelets')


def bccd_records(split: str = 'test') -> list[dict]:
    """The BCCD ``split`` records (``img_id``, ``img_path``, ``height``, ``width``, ``instances``)."""
    ds = VOCDataset(data_root=str(BCCD), ann_file=f'ImageSets/Main/{split}.txt',
                    data_prefix=dict(sub_data_root=''), metainfo=dict(classes=CLASSES), test_mode=True)
    return [ds.get_data_info(i) for i in range(len(ds))]


def gt_arrays(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([i['bbox'] for i in rec['instances']], dtype=np.float32).reshape(-1, 4)
    labels = np.array([i['bbox_label'] for i in rec['instances']], dtype=np.int64)
    return boxes, labels


def perturb(rec: dict, rng: np.random.Generator, n_fp: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions from the ground truth: boxes jittered by N(0, 8 % of their size), 10 % of the boxes dropped,
    10 % relabelled, ``n_fp`` random false positives; uniform scores. Returns (boxes, scores, labels)."""
    boxes, labels = gt_arrays(rec)
    keep = rng.random(len(boxes)) > 0.1
    boxes, labels = boxes[keep], labels[keep].copy()
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    boxes = boxes + rng.normal(0, 0.08, boxes.shape).astype(np.float32) * wh
    flip = rng.random(len(labels)) < 0.1
    labels[flip] = (labels[flip] + 1) % len(CLASSES)
    xy = rng.uniform(0, [rec['width'] - 80, rec['height'] - 80], (n_fp, 2))
    fp = np.concatenate([xy, xy + rng.uniform(20, 80, (n_fp, 2))], axis=1).astype(np.float32)
    boxes = np.concatenate([boxes, fp]).astype(np.float32)
    labels = np.concatenate([labels, rng.integers(0, len(CLASSES), n_fp)])
    return boxes, rng.random(len(boxes)).astype(np.float32), labels


def sample(rec: dict, boxes, scores, labels) -> dict:
    """A data sample dict as the Evaluator passes it (``DetDataSample.to_dict()``)."""
    s = DetDataSample(metainfo=dict(img_id=rec['img_id'], img_path=rec['img_path'],
                                    ori_shape=(rec['height'], rec['width']), instances=rec['instances']))
    s.pred_instances = InstanceData(bboxes=torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4),
                                    scores=torch.as_tensor(np.asarray(scores), dtype=torch.float32),
                                    labels=torch.as_tensor(np.asarray(labels), dtype=torch.int64))
    return s.to_dict()


def perturbed_samples(records: list[dict], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [sample(rec, *perturb(rec, rng)) for rec in records]
