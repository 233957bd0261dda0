"""EMAHook: EMA values vs a manual EMA, EMA weights in validation and checkpoints, resume."""
import pytest
import torch

from kiln.hooks import EMAHook, Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

M = 0.3


class Snapshots(Hook):
    """Copies of the model's parameters after every train iteration (after EMAHook: LOW priority) and at the
    first validation iteration (before any update: VERY_LOW runs after EMAHook's swap in before_val_epoch)."""

    priority = 'LOW'

    def __init__(self):
        self.train, self.val = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.train.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.val.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})


def manual_ema(snapshots, momentum=M):
    ema = dict(snapshots[0])  # the first update copies the model
    for snap in snapshots[1:]:
        ema = {k: (1 - momentum) * ema[k] + momentum * snap[k] for k in ema}
    return ema


def _runner(work_dir, max_epochs=2, **kw):
    snaps = Snapshots()
    runner = Runner(**runner_kwargs(work_dir, max_epochs=max_epochs,
                                    custom_hooks=[dict(type='EMAHook', momentum=M), snaps], **kw))
    return runner, snaps, next(h for h in runner.hooks if isinstance(h, EMAHook))


def test_ema_matches_manual_and_is_used_for_validation_and_checkpoints(tmp_path):
    runner, snaps, hook = _runner(tmp_path)
    runner.train()
    ema = manual_ema(snaps.train)
    for k, v in hook.ema_model.module.named_parameters():
        torch.testing.assert_close(v, ema[k])
    # validation after epoch 1 saw the EMA of the epoch-1 iterations, not the raw weights
    per_epoch = len(runner.train_dataloader)
    ema_epoch1 = manual_ema(snaps.train[:per_epoch])
    torch.testing.assert_close(snaps.val[0]['fc.weight'], ema_epoch1['fc.weight'])
    assert not torch.allclose(snaps.val[0]['fc.weight'], snaps.train[per_epoch - 1]['fc.weight'])
    # ... and training continued from the raw weights
    torch.testing.assert_close(runner.model.fc.weight.detach(), snaps.train[-1]['fc.weight'])
    # checkpoint: state_dict = EMA weights (for deployment), ema_state_dict = raw weights + step count
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)
    torch.testing.assert_close(ckpt['state_dict']['fc.weight'], ema['fc.weight'])
    torch.testing.assert_close(ckpt['ema_state_dict']['module.fc.weight'], snaps.train[-1]['fc.weight'])
    assert int(ckpt['ema_state_dict']['steps']) == 2 * per_epoch


def test_resume_restores_the_ema(tmp_path):
    full, _, full_hook = _runner(tmp_path / 'full')
    full.train()
    first, _, _ = _runner(tmp_path / 'part', max_epochs=1)
    first.train()
    resumed, _, hook = _runner(tmp_path / 'part', max_epochs=2, resume=True)
    resumed.train()
    assert resumed.epoch == 2
    for (k, v), w in zip(hook.ema_model.module.named_parameters(), full_hook.ema_model.module.parameters()):
        torch.testing.assert_close(v, w, msg=k)
    torch.testing.assert_close(resumed.model.fc.weight, full.model.fc.weight)
    assert hook.ema_model.steps.item() == full_hook.ema_model.steps.item()


def test_load_from_puts_ema_weights_in_both_models(tmp_path):
    runner, snaps, _ = _runner(tmp_path / 'train', max_epochs=1)
    runner.train()
    ema = manual_ema(snaps.train)
    tester, _, hook = _runner(tmp_path / 'test', load_from=str(tmp_path / 'train' / 'epoch_1.pth'))
    metrics = tester.val()
    assert 'accuracy' in metrics
    torch.testing.assert_close(hook.ema_model.module.fc.weight, ema['fc.weight'])
    torch.testing.assert_close(tester.model.fc.weight.detach(), ema['fc.weight'])


def test_begin_iter_and_annealing_and_errors(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False, custom_hooks=[
        dict(type='EMAHook', ema_type='MomentumAnnealingEMA', momentum=0.01, gamma=10, begin_iter=3)]))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, EMAHook))
    # before begin_iter the EMA follows the model; updates counted from iteration 3 on
    assert hook.ema_model.steps.item() == len(runner.train_dataloader) - 2
    assert type(hook.ema_model).__name__ == 'MomentumAnnealingEMA'
    with pytest.raises(ValueError, match='begin_iter'):
        EMAHook(begin_iter=-1)
