import math

import pytest
import torch

from kiln.hooks import CheckInvalidLossHook, Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class PoisonAt(Hook):
    """Turns the model's weights into NaN after iteration ``at`` (1-based), so later losses are NaN."""

    priority = 'VERY_LOW'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.fc.bias.fill_(math.nan)


def test_stops_with_a_message_naming_iteration_and_terms(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=3, val=False, default_hooks=dict(checkpoint=None),
                                    custom_hooks=[dict(type='CheckInvalidLossHook', interval=4), PoisonAt(5)]))
    with pytest.raises(FloatingPointError, match=r'at iteration 8 \(epoch 2\): loss_cls=nan, loss=nan'):
        runner.train()
    assert runner.iter == 7  # iteration 6 was already NaN; checked (one sync) only every 4 iterations


def test_finite_losses_pass_and_interval_checked():
    with pytest.raises(ValueError, match='interval'):
        CheckInvalidLossHook(interval=0)


def test_seed_example_custom_hook_runs(tmp_path):
    """The "Customize Your Hooks" example of the MMEngine docs, imports changed to kiln (registered under another
    name, as kiln ships a CheckInvalidLossHook of its own)."""
    from kiln.hooks import Hook
    from kiln.registry import HOOKS

    @HOOKS.register_module(name='DocCheckInvalidLossHook', force=True)
    class CheckInvalidLossHook(Hook):
        def __init__(self, interval=50):
            self.interval = interval
            self.checked = 0

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if self.every_n_train_iters(runner, self.interval):
                self.checked += 1
                assert torch.isfinite(outputs['loss']), runner.logger.info('loss become infinite or NaN!')

    custom_hooks = [dict(type='DocCheckInvalidLossHook', interval=2, priority='ABOVE_NORMAL')]
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False, custom_hooks=custom_hooks))
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'CheckInvalidLossHook')
    assert hook.priority == 'ABOVE_NORMAL' and hook.checked == len(runner.train_dataloader) // 2
