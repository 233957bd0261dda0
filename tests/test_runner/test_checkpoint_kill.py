"""SIGKILL at random moments while checkpoints are being written: ``last_checkpoint`` always names a complete
checkpoint, and every checkpoint file that exists loads (partial bytes only ever live in hidden temp files)."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from kiln.checkpoint import find_latest_checkpoint

N = 1_000_000  # 4 MB of weights: a save takes a few milliseconds, so kills often land inside one


# The writer runs in a fresh interpreter (not a fork of this multi-threaded test process, whose copied locks
# could hang it); it creates STARTED after its third checkpoint.
_WRITER = f"""
import os, sys, torch
from kiln.checkpoint import save_checkpoint, write_last_checkpoint
work = sys.argv[1]
for i in range(100_000):
    path = os.path.join(work, f'iter_{{i % 3}}.pth')  # overwrites older files, as max_keep_ckpts does
    save_checkpoint(dict(meta=dict(iter=i), state_dict={{'w': torch.full(({N},), float(i))}}), path)
    write_last_checkpoint(work, path)
    if i == 2:
        open(os.path.join(work, 'STARTED'), 'w').close()
"""


def test_kill_while_writing_leaves_valid_checkpoints(tmp_path):
    rng = random.Random(0)
    trials, partial = 5, 0
    repo = Path(__file__).resolve().parents[2]
    for trial in range(trials):
        work = tmp_path / str(trial)
        work.mkdir()
        proc = subprocess.Popen([sys.executable, '-c', _WRITER, str(work)], env=dict(os.environ, PYTHONPATH=str(repo)))
        deadline = time.monotonic() + 120
        while not (work / 'STARTED').exists():  # bounded wait for the writer's start-up (imports torch)
            assert proc.poll() is None and time.monotonic() < deadline, 'the checkpoint writer did not start'
            time.sleep(0.05)
        (work / 'STARTED').unlink()
        time.sleep(rng.uniform(0.0, 0.15))  # a random moment
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        latest = find_latest_checkpoint(work)
        ckpt = torch.load(latest, weights_only=True)
        i = ckpt['meta']['iter']
        assert latest.endswith(f'iter_{i % 3}.pth') and torch.equal(ckpt['state_dict']['w'], torch.full((N,), i))
        for path in work.glob('iter_*.pth'):  # older checkpoints are complete too
            old = torch.load(path, weights_only=True)
            assert old['meta']['iter'] <= i + 1 and old['state_dict']['w'][-1] == old['meta']['iter']
        partial += any(p.name.endswith('.tmp') for p in work.iterdir())
    print(f'{trials} kills, {partial} of them during a write')
