"""StopFileHook: a stop file in the work dir ends training cleanly (the last step is saved)."""
from pathlib import Path

import pytest
import torch

from kiln.hooks import Hook, StopFileHook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class _TouchAt(Hook):
    """Writes the stop file after training iteration ``at`` (1-based), as `kiln eval-watch` would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            (Path(runner.work_dir) / 'STOP').write_text('stop\n')


def test_iteration_based_run_stops_and_saves_that_iteration(tmp_path):
    (tmp_path / 'STOP').write_text('stale\n')  # left by an earlier run: removed, not obeyed
    runner = Runner(**runner_kwargs(
        tmp_path, val=False, train_cfg=dict(by_epoch=False, max_iters=50),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=20, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=5)),
        custom_hooks=[_TouchAt(7)]))
    runner.train()
    assert runner.iter == 7  # stopped right after the iteration that saw the file
    assert (tmp_path / 'STOP').read_text() == 'stop\n'
    assert sorted(p.name for p in tmp_path.glob('iter_*.pth')) == ['iter_7.pth']
    assert Path((tmp_path / 'last_checkpoint').read_text()).name == 'iter_7.pth'
    assert torch.load(tmp_path / 'iter_7.pth', weights_only=True)['meta']['iter'] == 7


def test_epoch_based_run_finishes_the_epoch(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=5, custom_hooks=[_TouchAt(8)]))  # 6 iterations an epoch
    runner.train()
    assert runner.epoch == 2 and runner.iter == 12
    assert sorted(p.name for p in tmp_path.glob('epoch_*.pth')) == ['epoch_1.pth', 'epoch_2.pth']


def test_disabled_and_bad_interval(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, val=False, default_hooks=dict(stop_file=None),
                                    custom_hooks=[_TouchAt(2)]))
    runner.train()
    assert runner.epoch == 2  # no StopFileHook: the file is ignored
    with pytest.raises(ValueError, match='interval'):
        StopFileHook(interval=0)
