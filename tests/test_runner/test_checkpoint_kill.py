"""SIGKILL at random moments while checkpoints are being written: ``last_checkpoint`` always names a complete
checkpoint, and every checkpoint file that exists loads (partial bytes only ever live in hidden temp files)."""
import multiprocessing as mp
import os
import random
import signal

import torch

from kiln.checkpoint import find_latest_checkpoint, save_checkpoint, write_last_checkpoint

N = 1_000_000  # 4 MB of weights: a save takes a few milliseconds, so kills often land inside one


def _writer(work_dir: str, started) -> None:  # runs in a forked child until killed
    for i in range(100_000):
        path = os.path.join(work_dir, f'iter_{i % 3}.pth')  # overwrites older files, as max_keep_ckpts does
        save_checkpoint(dict(meta=dict(iter=i), state_dict={'w': torch.full((N,), float(i))}), path)
        write_last_checkpoint(work_dir, path)
        if i == 2:
            started.set()


def test_kill_while_writing_leaves_valid_checkpoints(tmp_path):
    ctx = mp.get_context('fork')
    rng = random.Random(0)
    trials, partial = 5, 0
    for trial in range(trials):
        work = tmp_path / str(trial)
        work.mkdir()
        started = ctx.Event()
        proc = ctx.Process(target=_writer, args=(str(work), started))
        proc.start()
        assert started.wait(60)
        done = ctx.Event()
        done.wait(rng.uniform(0.0, 0.15))  # a random moment
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        latest = find_latest_checkpoint(work)
        ckpt = torch.load(latest, weights_only=True)
        i = ckpt['meta']['iter']
        assert latest.endswith(f'iter_{i % 3}.pth') and torch.equal(ckpt['state_dict']['w'], torch.full((N,), i))
        for path in work.glob('iter_*.pth'):  # older checkpoints are complete too
            old = torch.load(path, weights_only=True)
            assert old['meta']['iter'] <= i + 1 and old['state_dict']['w'][-1] == old['meta']['iter']
        partial += any(p.name.endswith('.tmp') for p in work.iterdir())
    print(f'{trials} kills, {partial} of them during a write')
