import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

from kiln.det.datasets import VOCDataset
from kiln.registry import HOOKS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'


def _keys(batch):
    return sorted(batch[0])


def test_pipeline_switch_hook_replaces_the_pipeline_in_persistent_workers():
    ds = VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                    metainfo=dict(classes=('RBC', 'WBC', 'Platelets')), pipeline=[])
    loader = DataLoader(ds, batch_size=1, num_workers=1, persistent_workers=True, collate_fn=list)
    runner = SimpleNamespace(epoch=0, train_dataloader=loader, logger=logging.getLogger('test'))
    hook = HOOKS.build(dict(type='PipelineSwitchHook', switch_epoch=1,
                            switch_pipeline=[dict(type='LoadImageFromFile')]))
    hook.before_train_epoch(runner)  # epoch 0: nothing changes
    assert 'img' not in _keys(next(iter(loader)))
    runner.epoch = 1
    hook.before_train_epoch(runner)
    batch = next(iter(loader))  # a new worker, with the new pipeline
    assert 'img' in _keys(batch) and batch[0]['img'].shape == (480, 640, 3)
    with pytest.raises(ValueError, match='switch_epoch'):
        HOOKS.build(dict(type='PipelineSwitchHook', switch_epoch=-1, switch_pipeline=[]))
    bad = SimpleNamespace(epoch=3, train_dataloader=SimpleNamespace(dataset=[1, 2]), logger=runner.logger)
    with pytest.raises(TypeError, match='list has no Compose'):
        HOOKS.build(dict(type='PipelineSwitchHook', switch_epoch=0, switch_pipeline=[])).before_train_epoch(bad)
