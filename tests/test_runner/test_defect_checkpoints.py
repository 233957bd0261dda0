"""Issue 10, part 6: checkpoint rotation after a resume, a failed validation after the last epoch, NaN losses
and an empty training set."""
import shutil

import pytest
import torch

from kiln.hooks import CheckpointHook, Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

ITER_HOOKS = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4, max_keep_ckpts=2))


def _names(path):
    return sorted(p.name for p in path.glob('*.pth'))


def test_resume_in_a_copied_work_dir_never_deletes_the_original(tmp_path):
    first = tmp_path / 'first'
    Runner(**runner_kwargs(first, default_hooks=ITER_HOOKS, val=False,
                           train_cfg=dict(by_epoch=False, max_iters=16))).train()
    assert _names(first) == ['iter_12.pth', 'iter_16.pth']
    copy = tmp_path / 'copy'
    shutil.copytree(first, copy)
    Runner(**runner_kwargs(copy, default_hooks=ITER_HOOKS, val=False, resume=True,
                           train_cfg=dict(by_epoch=False, max_iters=24))).train()
    assert _names(first) == ['iter_12.pth', 'iter_16.pth']  # untouched (iter_16 used to be deleted)
    # the copies were written by the user, not by this run: kept; the run keeps its own two
    assert _names(copy) == ['iter_12.pth', 'iter_16.pth', 'iter_20.pth', 'iter_24.pth']


def test_resume_in_place_counts_the_checkpoint_it_resumed_from(tmp_path):
    Runner(**runner_kwargs(tmp_path, default_hooks=ITER_HOOKS, val=False,
                           train_cfg=dict(by_epoch=False, max_iters=16))).train()
    resumed = Runner(**runner_kwargs(tmp_path, default_hooks=ITER_HOOKS, val=False, resume=True,
                                     train_cfg=dict(by_epoch=False, max_iters=24)))
    resumed.train()
    assert _names(tmp_path) == ['iter_20.pth', 'iter_24.pth']  # keep 2 (iter_16 was left over before)
    hook = [h for h in resumed.hooks if isinstance(h, CheckpointHook)][0]
    assert hook.saved == [str(tmp_path / 'iter_20.pth'), str(tmp_path / 'iter_24.pth')]


def test_resume_in_a_copy_from_its_own_file_counts_it(tmp_path):
    Runner(**runner_kwargs(tmp_path / 'a', default_hooks=ITER_HOOKS, val=False,
                           train_cfg=dict(by_epoch=False, max_iters=16))).train()
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    Runner(**runner_kwargs(tmp_path / 'b', default_hooks=ITER_HOOKS, val=False,
                           resume=str(tmp_path / 'b' / 'iter_16.pth'),
                           train_cfg=dict(by_epoch=False, max_iters=24))).train()
    assert _names(tmp_path / 'a') == ['iter_12.pth', 'iter_16.pth']
    assert _names(tmp_path / 'b') == ['iter_12.pth', 'iter_20.pth', 'iter_24.pth']  # iter_16 (resumed) rotated


class BrokenImage(Hook):
    """Fails like an image that cannot be decoded, in the validation after the last epoch."""

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch == runner.max_epochs and batch_idx == 2:
            raise OSError('cannot identify image file val/0042.jpg')


def test_failed_validation_after_the_last_epoch_keeps_its_checkpoint(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, custom_hooks=[BrokenImage()], log_level='INFO'))
    with pytest.raises(OSError, match='val/0042.jpg') as info:
        runner.train()
    assert _names(tmp_path) == ['epoch_1.pth', 'epoch_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_2.pth')
    note = ' '.join(getattr(info.value, '__notes__', []))
    assert 'validation after epoch 2 failed' in note and 'epoch_2.pth' in note
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter'], ckpt['meta']['val_pending']) == (2, 12, True)
    # epoch 1 was validated: its file was rewritten with the post-validation state (no val_pending)
    assert 'val_pending' not in torch.load(tmp_path / 'epoch_1.pth', weights_only=True)['meta']
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'validation after epoch 2 failed' in log

    # resuming runs the validation that did not finish, and trains nothing more
    class Count(Hook):
        def __init__(self):
            self.calls = []

        def after_train_iter(self, runner, **kwargs):
            self.calls.append('iter')

        def after_val_epoch(self, runner, metrics=None):
            self.calls.append(('val', runner.epoch))

    count = Count()
    Runner(**runner_kwargs(tmp_path, max_epochs=2, resume=True, custom_hooks=[count])).train()
    assert count.calls == [('val', 2)]


class Explode(Hook):
    """Sets the learning rate to inf after iteration ``at``: the weights become NaN at the next step (what
    ``lr=1e6`` did to a larger model)."""

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            for group in runner.optim_wrapper.param_groups:
                group['lr'] = float('inf')


def test_nan_loss_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path):
    hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3, max_keep_ckpts=1))
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=3, val=False, default_hooks=hooks,
                                    custom_hooks=[Explode(at=3)]))
    with pytest.raises(FloatingPointError, match=r'not finite at iteration \d+ .*loss') as info:
        runner.train()
    assert 'check_finite=False' in str(info.value) and 'iter_3.pth' in str(info.value)
    assert _names(tmp_path) == ['iter_3.pth']  # the last finite one was neither replaced nor rotated away
    state = torch.load(tmp_path / 'iter_3.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert runner.iter < 10  # stopped at the first check after the blow-up, not at the end


def test_nan_check_can_be_turned_off(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, val=False, default_hooks=dict(checkpoint=None),
                                    custom_hooks=[Explode(at=2)],
                                    train_cfg=dict(by_epoch=True, max_epochs=2, check_finite=False)))
    runner.train()  # MMEngine's behaviour: trains on
    assert runner.iter == 12
    assert not torch.isfinite(runner.message_hub.get_scalar('train/loss').current() * torch.ones(1)).all()
    with pytest.raises(ValueError, match='check_finite'):
        Runner(**runner_kwargs(tmp_path / 'x', train_cfg=dict(by_epoch=True, max_epochs=1,
                                                              check_finite='yes'))).train()


def test_empty_training_set_is_an_error_naming_the_dataset(tmp_path):
    from kiln.dataset import BaseDataset

    class Filtered(BaseDataset):
        def load_data_list(self):
            return [dict(img_path=f'{i}.jpg', instances=[]) for i in range(5)]

        def filter_data(self):
            return [r for r in self.data_list if r['instances']] if self.filter_cfg else self.data_list

    dataset = Filtered(ann_file='annotations/train.json', filter_cfg=dict(filter_empty_gt=True), lazy_init=False)
    loader = dict(dataset=dataset, sampler=dict(type='DefaultSampler', shuffle=True), batch_size=2)
    runner = Runner(**runner_kwargs(tmp_path, train_dataloader=loader))
    with pytest.raises(ValueError, match=r"Filtered has length 0 after loading and filtering") as info:
        runner.train()
    msg = str(info.value)
    assert '5 records were loaded' in msg and 'filter_empty_gt' in msg and 'annotations/train.json' in msg
    assert _names(tmp_path) == []  # no "best" or last checkpoint of an untrained model


def test_no_batch_because_of_drop_last_is_an_error(tmp_path):
    loader = dict(dataset=dict(type='BCCDCellCrops'), sampler=dict(type='DefaultSampler', shuffle=True),
                  batch_size=64, drop_last=True)
    with pytest.raises(ValueError, match='fewer than batch_size=64 with drop_last=True'):
        Runner(**runner_kwargs(tmp_path, train_dataloader=loader, train_cfg=dict(by_epoch=False, max_iters=3),
                               val=False)).train()
