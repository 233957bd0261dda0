"""Run by test_processes.py in separate processes: ``python process_script.py MODE WORK_DIR OUT_JSON``.

MODE ``dist``: one rank of a 2-process gloo run (RANK / WORLD_SIZE / MASTER_* set by the test).
MODE ``kill``: train 2 epochs and SIGKILL itself in the middle of epoch 2.
"""
import json
import os
import signal
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # tests/, not this folder (it has test_runner.py)

import torch  # noqa: E402

from kiln.hooks import Hook  # noqa: E402
from kiln.runner import Runner  # noqa: E402
from test_runner.toy import runner_kwargs  # noqa: E402

torch.set_num_threads(1)


class KillAt(Hook):
    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main(mode, work_dir, out):
    if mode == 'dist':
        runner = Runner(**runner_kwargs(work_dir, max_epochs=1, launcher='pytorch',
                                        env_cfg=dict(dist_cfg=dict(backend='gloo'))))
        runner.train()
        metrics = runner.val()
        weights = {k: v.sum().item() for k, v in runner.model.module.state_dict().items()}
        result = dict(rank=runner.rank, world_size=runner.world_size, iters=runner.iter, metrics=metrics,
                      weights=weights, wrapped=type(runner.model).__name__, timestamp=runner.timestamp,
                      samples=len(runner.train_dataloader.sampler))
    else:
        runner = Runner(**runner_kwargs(work_dir, max_epochs=2, model=dict(type='CellNet', dropout=0.5),
                                        custom_hooks=[KillAt(9)]))
        runner.train()
        result = dict(survived=True)
    Path(out).write_text(json.dumps(result))


if __name__ == '__main__':
    main(*sys.argv[1:])
