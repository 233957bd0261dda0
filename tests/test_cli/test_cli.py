import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kiln.cli import main

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
custom_imports = dict(imports=['test_runner.toy'], allow_failed_imports=False)
model = dict(type='CellNet')
train_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='train'),
                        sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4)
val_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='val'),
                      sampler=dict(type='DefaultSampler', shuffle=False), batch_size=4)
test_dataloader = val_dataloader
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
val_evaluator = dict(type='CellAccuracy')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
default_hooks = dict(logger=dict(type='LoggerHook', interval=2))
randomness = dict(seed=0)
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'cells.py'
    path.write_text(CONFIG)
    return path


def _kiln(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'kiln.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_then_test_in_subprocesses(tmp_path, config):
    work = tmp_path / 'work'
    proc = _kiln('train', config, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (work / 'epoch_1.pth').is_file() and not (work / 'epoch_2.pth').exists()
    assert (work / 'cells.py').is_file()  # the config is dumped next to the checkpoints
    assert 'Epoch(train) [1][2/6]' in proc.stderr  # the log goes to the terminal too
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=True)
    assert 'max_epochs=1' in ckpt['meta']['cfg']

    proc = _kiln('test', config, work / 'epoch_1.pth', '--work-dir', tmp_path / 'eval', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert set(metrics) == {'accuracy'} and 0 <= metrics['accuracy'] <= 100
    assert 'Load checkpoint from' in proc.stderr and 'Epoch(test) [5/5]' in proc.stderr


def test_default_work_dir_resume_and_amp_in_process(tmp_path, config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(['train', str(config), '--cfg-options', 'train_cfg.max_epochs=1', 'log_level=WARNING']) == 0
    work = tmp_path / 'work_dirs' / 'cells'
    assert (work / 'epoch_1.pth').is_file()
    assert main(['train', str(config), '--resume', '--cfg-options', 'log_level=WARNING']) == 0
    ckpt = torch.load(work / 'epoch_2.pth', weights_only=True)
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (2, 12)
    scalars = (work / sorted(p.name for p in work.iterdir() if p.is_dir())[-1] / 'vis_data' / 'scalars.json')
    assert scalars.is_file()
    assert main(['train', str(config), '--resume', str(work / 'epoch_1.pth'), '--work-dir', 'again',
                 '--cfg-options', 'log_level=WARNING']) == 0
    assert (tmp_path / 'again' / 'epoch_2.pth').is_file() and not (tmp_path / 'again' / 'epoch_1.pth').exists()
    assert main(['train', str(config), '--amp', '--work-dir', 'amp',
                 '--cfg-options', 'train_cfg.max_epochs=1', 'log_level=WARNING']) == 0
    assert 'AmpOptimWrapper' in (tmp_path / 'amp' / 'cells.py').read_text()


def test_user_errors_exit_2_with_a_message(tmp_path, config, capsys):
    assert main(['train', str(tmp_path / 'missing.py')]) == 2
    assert 'missing.py' in capsys.readouterr().err
    assert main(['test', str(config), str(tmp_path / 'none.pth')]) == 2
    assert 'none.pth' in capsys.readouterr().err
    torch.save({}, tmp_path / 'empty.pth')
    assert main(['test', str(config), str(tmp_path / 'empty.pth'), '--show-dir', 'vis']) == 2
    assert 'default_hooks.visualization' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['train'])


def test_print_config_applies_options(config, capsys):
    assert main(['print-config', str(config), '--cfg-options', 'train_cfg.max_epochs=7',
                 'optim_wrapper.optimizer.lr=0.5']) == 0
    out = capsys.readouterr().out
    assert 'max_epochs=7' in out and 'lr=0.5' in out and "type='CellNet'" in out


def test_registry_listing(capsys):
    assert main(['registry']) == 0
    assert 'HOOKS' in capsys.readouterr().out
    assert main(['registry', 'HOOKS']) == 0
    out = capsys.readouterr().out
    assert 'CheckpointHook' in out and 'kiln.hooks.checkpoint_hook.CheckpointHook' in out
    assert main(['registry', 'NOPE']) == 2
    assert 'NOPE' in capsys.readouterr().err
