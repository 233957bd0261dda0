from types import SimpleNamespace

import torch
from torch.utils.data import BatchSampler

from kiln.dataset import DefaultSampler
from kiln.hooks import Hook
from kiln.hooks.sampler_seed_hook import get_sampler
from kiln.runner import Runner
from test_runner.toy import BCCDCellCrops, runner_kwargs


class _FirstBatch(Hook):
    priority = 'LOW'

    def __init__(self):
        self.epochs, self.first = [], []

    def before_train_epoch(self, runner):
        self.epochs.append(runner.train_dataloader.sampler.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.first.append(torch.stack(data_batch['inputs']))


def test_set_epoch_before_each_epoch_reshuffles(tmp_path):
    spy = _FirstBatch()
    Runner(**runner_kwargs(tmp_path, val=False, max_epochs=3, custom_hooks=[spy])).train()
    assert spy.epochs == [0, 1, 2]
    dataset = BCCDCellCrops()
    for epoch, batch in enumerate(spy.first):  # DefaultSampler order: randperm seeded with seed + epoch
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0 + epoch))[:4]
        assert torch.equal(batch, dataset.x[order])
    assert not torch.equal(spy.first[0], spy.first[1])


def test_get_sampler_finds_the_batch_samplers_sampler():
    sampler = DefaultSampler(BCCDCellCrops(), seed=0)
    loader = SimpleNamespace(sampler=None, batch_sampler=BatchSampler(sampler, 2, False))
    assert get_sampler(loader) is sampler
    plain = SimpleNamespace(sampler=sampler)
    assert get_sampler(plain) is sampler
