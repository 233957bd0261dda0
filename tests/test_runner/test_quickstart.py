"""MMEngine's "15 minutes to get started" example with ``mmengine`` renamed to ``kiln``: the same model class,
metric, plain torch DataLoaders and Runner arguments. Only to keep the test fast on a shared CPU, CIFAR-10 is
replaced by 16x16 BCCD cell crops (3 classes) and ResNet-50 by ResNet-18."""
import re

import torch.nn.functional as F
import torchvision
from torch.optim import SGD
from torch.utils.data import DataLoader

from kiln.evaluator import BaseMetric
from kiln.model import BaseModel
from kiln.runner import Runner
from test_runner.toy import TupleCellCrops


class MMResNet50(BaseModel):
    def __init__(self):
        super().__init__()
        self.resnet = torchvision.models.resnet18()

    def forward(self, imgs, labels, mode):
        x = self.resnet(imgs)
        if mode == 'loss':
            return {'loss': F.cross_entropy(x, labels)}
        elif mode == 'predict':
            return x, labels


class Accuracy(BaseMetric):
    def process(self, data_batch, data_samples):
        score, gt = data_samples
        self.results.append({
            'batch_size': len(gt),
            'correct': (score.argmax(dim=1) == gt).sum().cpu(),
        })

    def compute_metrics(self, results):
        total_correct = sum(item['correct'] for item in results)
        total_size = sum(item['batch_size'] for item in results)
        return dict(accuracy=100 * total_correct / total_size)


def test_fifteen_minutes_example(tmp_path):
    train_dataloader = DataLoader(batch_size=32, shuffle=True, dataset=TupleCellCrops('train', size=16))
    val_dataloader = DataLoader(batch_size=32, shuffle=False, dataset=TupleCellCrops('val', size=16))
    runner = Runner(
        model=MMResNet50(),
        work_dir=str(tmp_path / 'work_dir'),
        train_dataloader=train_dataloader,
        optim_wrapper=dict(optimizer=dict(type=SGD, lr=0.001, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=5, val_interval=1),
        val_dataloader=val_dataloader,
        val_cfg=dict(),
        val_evaluator=dict(type=Accuracy),
    )
    runner.train()

    assert (runner.epoch, runner.iter) == (5, 5)  # 22 crops, batch 32: one iteration per epoch
    log = (tmp_path / 'work_dir' / runner.timestamp / f'{runner.timestamp}.log').read_text()
    accuracies = re.findall(r'Epoch\(val\) \[(\d)\]\[1/1\]\s+accuracy: (\d+\.\d+)', log)
    assert [int(e) for e, _ in accuracies] == [1, 2, 3, 4, 5]
    assert all(0 <= float(a) <= 100 for _, a in accuracies)
    assert (tmp_path / 'work_dir' / 'epoch_5.pth').is_file()
