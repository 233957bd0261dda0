import torch

from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class _Peek(Hook):
    priority = 'NORMAL'

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hub = runner.message_hub
        self.seen.append((hub.get_info('epoch'), hub.get_info('iter'), hub.get_scalar('train/lr').current()))


def test_runtime_info_in_the_message_hub(tmp_path):
    peek = _Peek()
    runner = Runner(**runner_kwargs(tmp_path, custom_hooks=[peek], param_scheduler=dict(
        type='MultiStepLR', milestones=[1], gamma=0.5)))
    runner.train()
    hub = runner.message_hub
    assert [(e, i) for e, i, _ in peek.seen] == [(i // 6, i) for i in range(12)]
    assert [lr for _, _, lr in peek.seen] == [0.1] * 6 + [0.05] * 6
    assert (hub.get_info('max_epochs'), hub.get_info('max_iters'), hub.get_info('seed')) == (2, 12, 0)
    assert hub.get_info('dataset_meta') == dict(classes=('RBC', 'WBC', 'Platelets'))
    assert hub.get_info('experiment_name') == runner.experiment_name
    assert len(hub.get_scalar('train/loss')) == 12 and len(hub.get_scalar('val/accuracy')) == 2
    assert 'train/grad_norm' not in hub.log_scalars  # no clipping configured: no norm


def test_grad_norm_is_recorded_when_clipping(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, val=False, max_epochs=1, optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=10.0))))
    runner.train()
    norms = runner.message_hub.get_scalar('train/grad_norm')
    assert len(norms) == 6 and norms.current() > 0


def test_losses_are_stored_without_conversion(tmp_path):
    stored = []

    class Spy(Hook):
        priority = 'HIGH'  # after RuntimeInfoHook (VERY_HIGH)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            stored.append(outputs['loss'])

    runner = Runner(**runner_kwargs(tmp_path, val=False, max_epochs=1, custom_hooks=[Spy()]))
    runner.train()
    assert all(isinstance(v, torch.Tensor) for v in stored)
    values = runner.message_hub.get_scalar('train/loss').data[0]
    assert list(values) == [v.item() for v in stored]
