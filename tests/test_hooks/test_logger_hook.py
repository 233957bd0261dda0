import json
import re

import pytest

from kiln.hooks import LoggerHook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


def _log_and_scalars(runner, tmp_path):
    ts = runner.timestamp
    log = (tmp_path / ts / f'{ts}.log').read_text()
    scalars = [json.loads(line) for line in (tmp_path / ts / 'vis_data' / 'scalars.json').read_text().splitlines()]
    return log, scalars


@pytest.mark.parametrize('interval, ignore_last, steps', [(4, True, [4, 10]), (4, False, [4, 6, 10, 12]),
                                                          (10, True, [6, 12])])
def test_train_lines_every_interval(tmp_path, interval, ignore_last, steps):
    runner = Runner(**runner_kwargs(tmp_path, val=False, log_level='INFO', default_hooks=dict(
        logger=dict(type='LoggerHook', interval=interval, ignore_last=ignore_last))))
    runner.train()
    log, scalars = _log_and_scalars(runner, tmp_path)
    lines = re.findall(r'Epoch\(train\) \[(\d)\]\[(\d)/6\]  lr: 1\.0000e-01  eta: \d:\d\d:\d\d  time: [\d.]+  '
                       r'data_time: [\d.]+  loss_cls: ([\d.]+)  loss: ([\d.]+)', log)
    # ignore_last is overridden when the epoch (6) is shorter than the interval (10)
    assert [(int(e) - 1) * 6 + int(i) for e, i, _, _ in lines] == steps
    assert all(a == b for _, _, a, b in lines)
    assert [s['step'] for s in scalars] == steps
    assert all({'lr', 'loss', 'loss_cls', 'time', 'data_time', 'epoch', 'iter'} <= set(s) for s in scalars)


def test_val_metrics_logged_by_epoch_or_iter(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path / 'a', log_level='INFO', default_hooks=dict(
        logger=dict(type='LoggerHook', interval=50))))
    runner.train()
    log, scalars = _log_and_scalars(runner, tmp_path / 'a')
    assert len(re.findall(r'Epoch\(val\) \[\d\]\[5/5\]\s+accuracy: \d+\.\d{4}', log)) == 2
    assert [s['step'] for s in scalars if 'accuracy' in s] == [1, 2]

    runner = Runner(**runner_kwargs(tmp_path / 'b', log_level='INFO', default_hooks=dict(
        logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False)),
        train_cfg=dict(by_epoch=False, max_iters=8, val_interval=4)))
    runner.train()
    log, scalars = _log_and_scalars(runner, tmp_path / 'b')
    assert len(re.findall(r'Iter\(val\) \[5/5\]\s+accuracy: ', log)) == 2
    assert [s['step'] for s in scalars if 'accuracy' in s] == [4, 8]


def test_test_metrics_and_out_dir_copy(tmp_path):
    kwargs = runner_kwargs(tmp_path / 'work', log_level='INFO', default_hooks=dict(
        logger=dict(type='LoggerHook', interval=2, out_dir=str(tmp_path / 'backup'))))
    kwargs.update(test_dataloader=kwargs['val_dataloader'], test_cfg=dict(), test_evaluator=kwargs['val_evaluator'])
    runner = Runner(**kwargs)
    metrics = runner.test()
    log, scalars = _log_and_scalars(runner, tmp_path / 'work')
    assert re.search(rf"Epoch\(test\) \[5/5\]\s+accuracy: {metrics['accuracy']:.4f}", log)
    assert re.search(r'Epoch\(test\) \[2/5\]', log)  # test iterations every interval
    assert scalars[-1]['accuracy'] == pytest.approx(metrics['accuracy'])
    ts = runner.timestamp
    assert (tmp_path / 'backup' / 'work' / ts / f'{ts}.log').is_file()
    assert (tmp_path / 'backup' / 'work' / ts / 'vis_data' / 'scalars.json').is_file()


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match='interval'):
        LoggerHook(interval=0)


def test_iteration_based_logs_every_interval_of_the_run(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, val=False, log_level='INFO', train_cfg=dict(by_epoch=False, max_iters=10),
                                    default_hooks=dict(logger=dict(type='LoggerHook', interval=4, ignore_last=False))))
    runner.train()
    log, scalars = _log_and_scalars(runner, tmp_path)
    assert [s['step'] for s in scalars] == [4, 8]  # no extra line when the data wraps after 6 iterations
    assert re.findall(r'Iter\(train\) \[ ?(\d+)/10\]', log) == ['4', '8']


def test_out_dir_through_fsspec_with_suffix_and_keep_local(tmp_path):
    import fsspec
    runner = Runner(**runner_kwargs(tmp_path / 'work', max_epochs=1, log_level='INFO', default_hooks=dict(
        logger=dict(type='LoggerHook', interval=2, out_dir='memory://logs', out_suffix='.log', keep_local=False))))
    runner.train()
    ts = runner.timestamp
    fs = fsspec.filesystem('memory')
    with fs.open(f'/logs/work/{ts}/{ts}.log') as f:
        assert b'Epoch(train)' in f.read()
    assert not fs.exists(f'/logs/work/{ts}/vis_data/scalars.json')  # not a .log
    assert not (tmp_path / 'work' / ts / f'{ts}.log').exists()  # keep_local=False
    assert (tmp_path / 'work' / ts / 'vis_data' / 'scalars.json').exists()
    fs.rm('/logs/work', recursive=True)
