"""``torchrun -m kiln.cli train CONFIG --launcher pytorch``: the CLI under torchrun (2 gloo ranks, 2 iterations)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
custom_imports = dict(imports=['test_runner.toy'], allow_failed_imports=False)
model = dict(type='CellNet')
train_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='train'),
                        sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4, num_workers=0)
train_cfg = dict(by_epoch=False, max_iters=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
"""


def test_kiln_train_under_torchrun(tmp_path):
    cfg = tmp_path / 'cells.py'
    cfg.write_text(CONFIG)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                           '-m', 'kiln.cli', 'train', str(cfg), '--launcher', 'pytorch', '--resume',
                           '--work-dir', str(tmp_path / 'work')],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ckpt = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 2 and "launcher = 'pytorch'" in ckpt['meta']['cfg']
    logs = list((tmp_path / 'work').glob('*/*.log'))
    assert len(logs) == 1  # rank 0 only
    text = logs[0].read_text()
    assert 'world size: 2' in text and 'distributed: True' in text
