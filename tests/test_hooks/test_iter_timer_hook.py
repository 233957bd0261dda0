from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class _Eta(Hook):
    priority = 'BELOW_NORMAL'

    def __init__(self):
        self.etas = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.etas.append(runner.message_hub.get_info('eta'))


def test_times_and_eta(tmp_path):
    spy = _Eta()
    runner = Runner(**runner_kwargs(tmp_path, custom_hooks=[spy]))
    runner.train()
    hub = runner.message_hub
    times, data_times = hub.get_scalar('train/time').data[0], hub.get_scalar('train/data_time').data[0]
    assert len(times) == len(data_times) == 12
    assert all(t > 0 for t in times) and all(0 <= d <= t for d, t in zip(data_times, times))
    assert len(hub.get_scalar('val/time')) == 10  # 5 val batches x 2 validations
    assert spy.etas[-1] == 0 and all(e >= 0 for e in spy.etas)
    # ETA = mean iteration time so far x iterations left
    assert abs(spy.etas[5] - sum(times[:6]) / 6 * 6) < 1e-9
