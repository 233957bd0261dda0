"""A tiny real-data task for runner, hook and CLI tests: classify BCCD blood-cell crops (RBC / WBC / Platelets).

Crops are cut from the vendored BCCD images (``data/bccd``) along their VOC boxes and resized to
``size x size``; loading is cached per process, so each test pays for it once.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from kiln.evaluator import BaseMetric
from kiln.model import BaseModel
from kiln.registry import DATASETS, METRICS, MODELS

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')
_CACHE: dict = {}


def load_crops(split: str = 'train', n_images: int = 6, size: int = 12,
               max_per_class: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of the first ``n_images`` images of ``ImageSets/Main/<split>.txt``: float32 (N, 3, size, size) in
    [0, 1] (RGB) and int64 (N,) labels, at most ``max_per_class`` per class."""
    key = (split, n_images, size, max_per_class)
    if key not in _CACHE:
        ids = (BCCD / 'ImageSets' / 'Main' / f'{split}.txt').read_text().split()[:n_images]
        xs, ys, counts = [], [], [0, 0, 0]
        for img_id in ids:
            root = ET.parse(BCCD / 'Annotations' / f'{img_id}.xml').getroot()
            with Image.open(BCCD / 'JPEGImages' / f'{img_id}.jpg') as im:
                img = im.convert('RGB')
            for obj in root.iter('object'):
                label = CLASSES.index(obj.findtext('name').strip())
                if counts[label] >= max_per_class:
                    continue
                box = obj.find('bndbox')
                x1, y1, x2, y2 = (int(float(box.findtext(k))) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                if x2 - x1 < 4 or y2 - y1 < 4:
                    continue
                crop = np.asarray(img.crop((x1, y1, x2, y2)).resize((size, size)), dtype=np.float32) / 255.0
                xs.append(torch.from_numpy(crop).permute(2, 0, 1).contiguous())
                ys.append(label)
                counts[label] += 1
        _CACHE[key] = (torch.stack(xs), torch.tensor(ys, dtype=torch.int64))
    return _CACHE[key]


@DATASETS.register_module(force=True)
class BCCDCellCrops(Dataset):
    """Items ``dict(inputs=float32 (3, size, size), data_samples=int64 0-dim label)``."""

    def __init__(self, split: str = 'train', n_images: int = 6, size: int = 12, max_per_class: int = 8) -> None:
        self.x, self.y = load_crops(split, n_images, size, max_per_class)
        self.metainfo = dict(classes=CLASSES)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i], data_samples=self.y[i])


class TupleCellCrops(Dataset):
    """Items ``(image, label)`` as torchvision datasets give them (for the MMEngine quick-start example)."""

    def __init__(self, split: str = "train", size: int = 32) -> None:
        self.x, self.y = load_crops(split, 6, size, 8)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple:
        return self.x[i], self.y[i]


@MODELS.register_module(force=True)
class CellNet(BaseModel):
    """conv3x3 -> ReLU -> global average pool -> linear, 3 classes."""

    def __init__(self, width: int = 8, dropout: float = 0.0, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor, init_cfg)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, len(CLASSES))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        x = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        logits = self.fc(self.drop(F.relu(self.conv(x)).mean((2, 3))))
        if mode == 'tensor':
            return logits
        labels = torch.stack(list(data_samples)) if isinstance(data_samples, (list, tuple)) else data_samples
        if mode == 'loss':
            return dict(loss_cls=F.cross_entropy(logits, labels))
        return [dict(pred_label=p, gt_label=g) for p, g in zip(logits.argmax(1), labels)]


@METRICS.register_module(force=True)
class CellAccuracy(BaseMetric):
    """Top-1 accuracy in percent (key ``accuracy``)."""

    def process(self, data_batch, data_samples) -> None:
        for s in data_samples:
            self.results.append(int(s['pred_label'] == s['gt_label']))

    def compute_metrics(self, results: list) -> dict:
        return dict(accuracy=100.0 * sum(results) / len(results))


def loader_cfg(split: str = 'train', batch_size: int = 4, shuffle: bool = True, **dataset_kwargs) -> dict:
    """A dataloader config over ``BCCDCellCrops``."""
    return dict(dataset=dict(type='BCCDCellCrops', split=split, **dataset_kwargs),
                sampler=dict(type='DefaultSampler', shuffle=shuffle), batch_size=batch_size, num_workers=0)


def runner_kwargs(work_dir, max_epochs: int = 2, val: bool = True, **overrides) -> dict:
    """Keyword arguments of a small Runner: CellNet, SGD, epoch-based, validated every epoch, seed 0."""
    kwargs = dict(model=dict(type='CellNet'), work_dir=str(work_dir), train_dataloader=loader_cfg('train'),
                  train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
                  default_hooks=dict(logger=dict(type='LoggerHook', interval=2)),
                  randomness=dict(seed=0), log_level='WARNING')
    if val:
        kwargs.update(val_dataloader=loader_cfg('val', shuffle=False), val_cfg=dict(),
                      val_evaluator=dict(type='CellAccuracy'))
    kwargs.update(overrides)
    return kwargs
