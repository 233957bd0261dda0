"""Make the MMEngine-saved checkpoint that kiln's compatibility tests load (run once; the output is committed).

Needs MMEngine 0.10.7 importable next to kiln's torch, e.g.::

    pip install --target /tmp/mme_pkgs --no-deps mmengine==0.10.7 addict termcolor yapf platformdirs \
        matplotlib contourpy cycler kiwisolver fonttools pyparsing python-dateutil six
    PYTHONPATH=/tmp/mme_pkgs .venv/bin/python tools/make_mmengine_checkpoint.py tests/data/mmengine_checkpoint

It trains, with MMEngine's own Runner, the model of ``tests/test_runner/toy.py`` (``CellNet``: conv3x3 -> ReLU ->
mean -> linear, on BCCD cell crops) for 2 epochs with SGD + momentum, a linear warm-up and a multi-step decay,
validating every epoch, and keeps ``epoch_1.pth``. MMEngine pickles ``HistoryBuffer``, NumPy scalars and
dtypes, ``ConfigDict`` and ``collections.Counter`` into such files.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'test_runner'))
from toy import load_crops  # noqa: E402  (plain PIL + numpy; BCCD crops)


class Crops(Dataset):
    def __init__(self, split):
        self.x, self.y = load_crops(split, 6, 12, 8)
        self.metainfo = dict(classes=('RBC', 'WBC', 'Platelets'))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class CellNet(BaseModel):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(width, 3)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(list(inputs))
        logits = self.fc(self.drop(F.relu(self.conv(x)).mean((2, 3))))
        labels = torch.stack(list(data_samples))
        if mode == 'loss':
            return dict(loss_cls=F.cross_entropy(logits, labels))
        return [dict(pred_label=p, gt_label=g) for p, g in zip(logits.argmax(1), labels)]


class Acc(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(int(s['pred_label'] == s['gt_label']) for s in data_samples)

    def compute_metrics(self, results):
        return dict(accuracy=100.0 * sum(results) / len(results))


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    work = tempfile.mkdtemp()
    loader = dict(sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4, num_workers=0,
                  collate_fn=dict(type='pseudo_collate'))
    runner = Runner(
        model=CellNet(), work_dir=work,
        train_dataloader=dict(dataset=Crops('train'), **loader),
        val_dataloader=dict(dataset=Crops('val'), **dict(loader, sampler=dict(type='DefaultSampler',
                                                                              shuffle=False))),
        val_evaluator=[Acc()], val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
                         dict(type='MultiStepLR', milestones=[1], gamma=0.1, by_epoch=True)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=2)),
        randomness=dict(seed=0), experiment_name='mmengine_cellnet')
    runner.train()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(work) / 'epoch_1.pth', out / 'epoch_1.pth')
    ck = torch.load(out / 'epoch_1.pth', weights_only=False)
    print('keys', sorted(ck), 'meta', sorted(ck['meta']))
    print('lr after epoch 1:', [g['lr'] for g in ck['optimizer']['param_groups']])
    shutil.rmtree(work)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'tests/data/mmengine_checkpoint')
