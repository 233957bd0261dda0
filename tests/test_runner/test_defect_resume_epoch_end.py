"""Issue 10, part 6: resuming from an iteration checkpoint written on the last batch of an epoch (and killed
during the validation that follows it) continues with the next epoch instead of re-training the whole epoch."""
import pytest
import torch

from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

HOOKS = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6))


class Count(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.iters = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters.append((runner.epoch, batch_idx, runner.iter))


class KillDuringVal(Hook):
    """Stands in for a SIGKILL arriving while the first validation runs."""

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        raise KeyboardInterrupt('killed during validation')


def _weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('by_epoch_loop', [True, False])
def test_resume_from_the_last_batch_of_an_epoch_does_not_retrain_it(tmp_path, by_epoch_loop):
    train_cfg = (dict(by_epoch=True, max_epochs=2, val_interval=1) if by_epoch_loop
                 else dict(by_epoch=False, max_iters=12, val_interval=6))
    full = Runner(**runner_kwargs(tmp_path / 'full', default_hooks=HOOKS, train_cfg=train_cfg))
    full.train()
    expected = _weights(full)

    killed = Runner(**runner_kwargs(tmp_path / 'run', default_hooks=HOOKS, train_cfg=train_cfg,
                                    custom_hooks=[KillDuringVal()]))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert (tmp_path / 'run' / 'iter_6.pth').is_file()  # written on the last batch of epoch 1
    meta = torch.load(tmp_path / 'run' / 'iter_6.pth', weights_only=True)['meta']
    assert (meta['epoch'], meta['iter']) == (0, 6)

    count = Count()
    resumed = Runner(**runner_kwargs(tmp_path / 'run', default_hooks=HOOKS, train_cfg=train_cfg, resume=True,
                                     custom_hooks=[count]))
    resumed.train()
    assert len(count.iters) == 6  # not 12: epoch 1 is not trained again
    assert count.iters[0][2] == 6
    if by_epoch_loop:
        assert [c[:2] for c in count.iters] == [(1, i) for i in range(6)]
    got = _weights(resumed)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
