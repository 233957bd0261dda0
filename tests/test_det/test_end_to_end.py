"""End to end on real BCCD images: the demo config trains, checkpoints, resumes, validates and tests.

The demo config (configs/fcos/fcos_r18-slim_fpn_bccd.py) is shrunk with ``--cfg-options``-style overrides to a
few images at a small input size so that the whole file runs in well under a minute on 2 cores.
"""
import json
import re
from pathlib import Path

import pytest
import torch

from kiln.config import Config
from kiln.registry import init_default_scope
from kiln.runner import Runner

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'
METRIC_KEYS = {f'coco/bbox_{k}' for k in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')}


def small_cfg(work_dir: Path, max_epochs: int) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    small = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
             dict(type='Resize', scale=(256, 192), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
             dict(type='PackDetInputs')]
    test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(256, 192), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    cfg.merge_from_dict({
        'work_dir': str(work_dir),
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.indices': 6, 'train_dataloader.dataset.pipeline': small,
        'val_dataloader.batch_size': 2, 'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'val_dataloader.dataset.indices': 4, 'val_dataloader.dataset.pipeline': test,
        'train_cfg.max_epochs': max_epochs, 'train_cfg.val_interval': 1,
        'param_scheduler': [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': -1,
    })
    cfg.test_dataloader = cfg.val_dataloader
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch with one Runner; a second Runner resumes from the epoch-1 checkpoint and trains epoch 2."""
    init_default_scope('kiln.det')
    work_dir = tmp_path_factory.mktemp('bccd_e2e')
    runner = Runner.from_cfg(small_cfg(work_dir, max_epochs=1))
    runner.train()
    first_log = Path(runner.log_dir)
    cfg = small_cfg(work_dir, max_epochs=2)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    return work_dir, runner, first_log, resumed


def test_train_writes_checkpoints_logs_and_scalars(trained):
    work_dir, runner, log_dir, _ = trained
    assert (work_dir / 'epoch_1.pth').is_file()
    best = list(work_dir.glob('best_coco_bbox_mAP_epoch_*.pth'))
    assert len(best) == 1
    log_text = next(log_dir.glob('*.log')).read_text()
    # The training line users know from MMEngine.
    assert re.search(r'Epoch\(train\) \[1\]\[\s*\d+/3\]\s+lr: \d\.\d{4}e[-+]\d\d\s+eta: \d+:\d\d:\d\d\s+'
                     r'time: \d+\.\d{4}\s+data_time: \d+\.\d{4}.*loss_cls: \d+\.\d{4}.*loss: \d+\.\d{4}',
                     log_text), log_text[-2000:]
    assert re.search(r'Epoch\(val\) \[1\]\[2/2\]\s+.*coco/bbox_mAP: \d\.\d{4}', log_text)
    lines = (log_dir / 'vis_data' / 'scalars.json').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    train_records = [r for r in records if 'loss' in r]
    assert [r['step'] for r in train_records] == [1, 2, 3]
    assert all(r['loss'] > 0 for r in train_records)
    assert any('coco/bbox_mAP' in r for r in records)
    assert (log_dir / 'vis_data' / 'config.py').is_file()


def test_checkpoint_loads_with_weights_only(trained):
    work_dir, runner, _, _ = trained
    ckpt = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 3
    assert ckpt['meta']['dataset_meta']['classes'] == ('RBC', 'WBC', 'Platelets')
    assert 'bbox_head.conv_cls.weight' in ckpt['state_dict']
    assert ckpt['optimizer']['param_groups']
    model_sd = runner.model.state_dict()
    for k, v in ckpt['state_dict'].items():
        assert torch.equal(v, model_sd[k].cpu()), k


def test_resume_continues_from_the_latest_checkpoint(trained):
    work_dir, _, _, resumed = trained
    assert resumed.epoch == 2 and resumed.iter == 6
    assert (work_dir / 'epoch_2.pth').is_file()
    assert Path((work_dir / 'last_checkpoint').read_text().strip()).name == 'epoch_2.pth'
    log_text = next(Path(resumed.log_dir).glob('*.log')).read_text()
    assert 'Epoch(train) [1]' not in log_text  # epoch 1 was not trained again
    assert re.search(r'Epoch\(train\) \[2\]\[\s*3/3\]', log_text)


def test_test_on_saved_checkpoint_reproduces_val_metrics(trained, tmp_path):
    work_dir, _, _, resumed = trained
    val_metrics = resumed.val()
    assert METRIC_KEYS <= set(val_metrics)
    cfg = small_cfg(tmp_path, max_epochs=2)
    cfg.load_from = str(work_dir / 'epoch_2.pth')
    tester = Runner.from_cfg(cfg)
    test_metrics = tester.test()
    assert METRIC_KEYS <= set(test_metrics)
    for key in METRIC_KEYS:
        assert test_metrics[key] == pytest.approx(val_metrics[key], abs=1e-6), key
