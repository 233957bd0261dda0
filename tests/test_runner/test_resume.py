"""Resume continues at the right epoch / iteration and reproduces the uninterrupted run's losses exactly
(CellNet with dropout, so the RNG state matters too)."""
import pytest
import torch

from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class LossLog(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.positions = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(outputs['loss'].item())
        self.positions.append((runner.epoch, batch_idx, runner.iter))


def _kwargs(work_dir, **overrides):
    kwargs = runner_kwargs(work_dir, model=dict(type='CellNet', dropout=0.5),
                           param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.5))
    kwargs.update(overrides)
    return kwargs


def _run(work_dir, **overrides):
    log = LossLog()
    runner = Runner(**_kwargs(work_dir, custom_hooks=[log], **overrides))
    runner.train()
    return runner, log


def test_resume_latest_epoch_checkpoint_reproduces_the_run(tmp_path):
    _, full = _run(tmp_path / 'full', train_cfg=dict(by_epoch=True, max_epochs=3))
    part_runner, part = _run(tmp_path / 'part', train_cfg=dict(by_epoch=True, max_epochs=2))
    assert part.losses == full.losses[:12]
    resumed_runner, resumed = _run(tmp_path / 'part', train_cfg=dict(by_epoch=True, max_epochs=3), resume=True)
    assert resumed.positions[0] == (2, 0, 12)  # continues with the third epoch
    assert resumed.losses == full.losses[12:]
    assert resumed_runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.05)]
    # the message hub history was restored too (smoothed loss over the window spans the restart)
    assert len(resumed_runner.message_hub.get_scalar('train/loss')) == 18
    assert (tmp_path / 'part' / 'epoch_3.pth').is_file()


def test_resume_mid_epoch_from_an_iteration_checkpoint(tmp_path):
    hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
    _, full = _run(tmp_path / 'full', default_hooks=hooks, val_dataloader=None)
    ckpt = torch.load(tmp_path / 'full' / 'iter_8.pth', weights_only=True)
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (1, 8)  # inside epoch 2, 8 iterations done
    _, resumed = _run(tmp_path / 'resumed', default_hooks=hooks, val_dataloader=None,
                      resume=str(tmp_path / 'full' / 'iter_8.pth'))
    assert resumed.positions[0] == (1, 2, 8)  # the sampler skipped the 2 batches of epoch 2 already seen
    assert resumed.losses == full.losses[8:]


@pytest.mark.parametrize('start', [4, 8])
def test_resume_iter_based(tmp_path, start):
    train_cfg = dict(by_epoch=False, max_iters=10, val_interval=5)
    hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
    sched = dict(type='MultiStepLR', by_epoch=False, milestones=[3], gamma=0.5)
    full_runner, full = _run(tmp_path / 'full', train_cfg=train_cfg, default_hooks=hooks, param_scheduler=sched)
    assert sorted(p.name for p in (tmp_path / 'full').glob('iter_*.pth')) == ['iter_10.pth', 'iter_4.pth',
                                                                               'iter_8.pth']
    runner, resumed = _run(tmp_path / 'resumed', train_cfg=train_cfg, default_hooks=hooks, param_scheduler=sched,
                           resume=str(tmp_path / 'full' / f'iter_{start}.pth'))
    assert resumed.positions[0][2] == start
    assert resumed.losses == full.losses[start:]
    assert runner.param_schedulers[0].state_dict() == full_runner.param_schedulers[0].state_dict()
    assert runner.optim_wrapper.get_lr() == full_runner.optim_wrapper.get_lr()


def test_load_from_loads_weights_only(tmp_path):
    trained, _ = _run(tmp_path / 'a', train_cfg=dict(by_epoch=True, max_epochs=1), val_dataloader=None)
    runner = Runner(**_kwargs(tmp_path / 'b', load_from=str(tmp_path / 'a' / 'epoch_1.pth'),
                              train_cfg=dict(by_epoch=True, max_epochs=1), val_dataloader=None))
    log = LossLog()
    runner.register_hook(log)
    runner.train()
    assert log.positions[0] == (0, 0, 0)  # counters start from zero: weights only
    saved = torch.load(tmp_path / 'a' / 'epoch_1.pth', weights_only=True)['state_dict']
    assert any(not torch.equal(saved[k], v) for k, v in runner.model.state_dict().items())  # and trained on


def test_resume_true_without_checkpoint_trains_from_scratch(tmp_path):
    runner, log = _run(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=1), val_dataloader=None, resume=True)
    assert log.positions[0] == (0, 0, 0) and runner.iter == 6


def test_resume_rejects_a_bare_state_dict(tmp_path):
    torch.save(dict(state_dict={}), tmp_path / 'bare.pth')
    with pytest.raises(KeyError, match='not a training checkpoint'):
        _run(tmp_path, resume=str(tmp_path / 'bare.pth'))
