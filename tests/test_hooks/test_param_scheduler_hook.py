import pytest

from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class _LrLog(Hook):
    def __init__(self):
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])


def _lrs(tmp_path, scheduler, **kwargs):
    log = _LrLog()
    Runner(**runner_kwargs(tmp_path, val=False, custom_hooks=[log], param_scheduler=scheduler, **kwargs)).train()
    return log.lrs


def test_epoch_scheduler_steps_after_each_epoch(tmp_path):
    lrs = _lrs(tmp_path, dict(type='MultiStepLR', milestones=[1, 2], gamma=0.1), max_epochs=3)
    assert lrs == pytest.approx([0.1] * 6 + [0.01] * 6 + [0.001] * 6)


def test_iter_scheduler_steps_after_each_iteration(tmp_path):
    lrs = _lrs(tmp_path, [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4),
                          dict(type='MultiStepLR', milestones=[1], gamma=0.1)], max_epochs=2)
    assert lrs[:5] == pytest.approx([0.05, 0.05 + 0.05 / 3, 0.05 + 0.1 / 3, 0.1, 0.1])  # MMEngine: end - begin - 1 steps
    assert lrs[6:] == pytest.approx([0.01] * 6)


def test_convert_to_iter_based(tmp_path):
    lrs = _lrs(tmp_path, dict(type='MultiStepLR', milestones=[1], gamma=0.1, convert_to_iter_based=True),
               max_epochs=2)
    assert lrs == pytest.approx([0.1] * 6 + [0.01] * 6)
