import json
import re

import pytest
import torch

from kiln.config import Config
from kiln.hooks import CheckpointHook, Hook, LoggerHook, RuntimeInfoHook
from kiln.runner import Runner
from test_runner.recorder import Recorder
from test_runner.toy import CellNet, runner_kwargs


def test_init_is_cheap_and_lazy(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path))
    assert runner._model is None and runner._train_loop is None and runner._val_loop is None
    assert runner.optim_wrapper is None and runner.param_schedulers is None
    assert (runner.epoch, runner.iter, runner.max_epochs, runner.max_iters) == (0, 0, None, None)
    assert re.fullmatch(r'\d{8}_\d{6}', runner.timestamp)
    assert runner.log_dir == str(tmp_path / runner.timestamp)
    assert runner.experiment_name == runner.timestamp and runner.seed == 0
    assert (runner.launcher, runner.distributed, runner.rank, runner.world_size) == ('none', False, 0, 1)
    assert [type(h).__name__ for h in runner.hooks] == [
        'RuntimeInfoHook', 'IterTimerHook', 'DistSamplerSeedHook', 'LoggerHook', 'ParamSchedulerHook',
        'CheckpointHook', 'ProgressHook', 'StopFileHook']
    assert isinstance(runner.model, CellNet)  # built on first access
    assert runner._train_loop is None


def test_train_writes_the_work_dir_layout(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, log_level='INFO'))
    model = runner.train()
    assert model is runner.model
    ts = runner.timestamp
    log = (tmp_path / ts / f'{ts}.log').read_text()
    assert 'System environment' in log and 'seed: 0' in log
    line = re.compile(r'Epoch\(train\) \[1\]\[2/6\]  lr: 1\.0000e-01  eta: \S+  time: \d+\.\d{4}  '
                      r'data_time: \d+\.\d{4}  loss_cls: \d+\.\d{4}  loss: \d+\.\d{4}')
    assert line.search(log), log
    assert re.search(r'Epoch\(val\) \[2\]\[5/5\]\s+accuracy: \d+\.\d{4}', log)
    records = [json.loads(x) for x in (tmp_path / ts / 'vis_data' / 'scalars.json').read_text().splitlines()]
    train = [r for r in records if 'loss' in r]
    assert [r['step'] for r in train] == [2, 4, 6, 8, 10, 12]  # LoggerHook interval=2, one object per step
    assert [r['step'] for r in records if 'accuracy' in r] == [1, 2]
    assert {p.name for p in tmp_path.iterdir()} >= {'epoch_1.pth', 'epoch_2.pth', 'last_checkpoint', ts}
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_2.pth')


def test_checkpoint_loads_with_weights_only(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1))
    runner.train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    assert set(ckpt) >= {'meta', 'state_dict', 'optimizer', 'message_hub', 'hooks'}
    meta = ckpt['meta']
    assert (meta['epoch'], meta['iter'], meta['seed']) == (1, 6, 0)
    assert meta['dataset_meta'] == dict(classes=('RBC', 'WBC', 'Platelets'))
    assert {'kiln_version', 'torch_version', 'cfg', 'experiment_name', 'time'} <= set(meta)
    own = runner.model.state_dict()
    assert set(ckpt['state_dict']) == set(own)
    assert all(torch.equal(ckpt['state_dict'][k], own[k].cpu()) for k in own)
    assert 'CheckpointHook' in ckpt['hooks']


def test_from_cfg_dumps_and_logs_the_config(tmp_path):
    path = tmp_path / 'cell_cfg.py'
    path.write_text('model = dict(type="CellNet", width=4)\ntrain_cfg = dict(by_epoch=True, max_epochs=1)\n')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(dict(runner_kwargs(tmp_path / 'wd', val=False, model=cfg.model, train_cfg=cfg.train_cfg)))
    runner = Runner.from_cfg(cfg)
    assert runner.experiment_name == f'cell_cfg_{runner.timestamp}'
    dumped = Config.fromfile(tmp_path / 'wd' / 'cell_cfg.py')
    assert dumped.model == dict(type='CellNet', width=4)
    assert (tmp_path / 'wd' / runner.timestamp / 'vis_data' / 'config.py').is_file()
    runner.train()
    ckpt = torch.load(tmp_path / 'wd' / 'epoch_1.pth', weights_only=True)
    assert "type='CellNet'" in ckpt['meta']['cfg'] and 'width=4' in ckpt['meta']['cfg']
    with pytest.raises(KeyError, match='work_dir'):
        Runner.from_cfg(dict(model=dict(type='CellNet')))


def test_train_twice_trains_again_from_current_weights(tmp_path):
    rec = Recorder()
    runner = Runner(**runner_kwargs(tmp_path, val=False, custom_hooks=[rec], param_scheduler=dict(
        type='MultiStepLR', milestones=[1], gamma=0.1)))
    runner.train()
    first_opt = runner.optim_wrapper
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.01)]
    runner.train()
    assert runner.optim_wrapper is not first_opt  # rebuilt from its config: fresh momentum
    assert (runner.epoch, runner.iter) == (2, 12)
    assert rec.calls.count('after_train_iter') == 24 and rec.calls.count('before_run') == 2
    first_iters = [d[2] for d in rec.details if d[0] == 'after_train_iter']
    assert first_iters == list(range(12)) * 2
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.01)]  # schedule ran again from 0.1
    assert any(not torch.equal(weights[k], v) for k, v in runner.model.state_dict().items())


class _Named(Hook):
    def __init__(self, name, log, priority=None):
        self.name, self.log = name, log
        if priority is not None:
            self.priority = priority

    def before_run(self, runner):
        self.log.append(self.name)


def test_hooks_are_called_by_priority_then_registration_order(tmp_path):
    log = []
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=dict(checkpoint=None, timer=None), custom_hooks=[
        _Named('normal1', log), dict(type=_Named, name='low', log=log, priority='LOW'),
        _Named('high', log, priority='HIGH'), _Named('normal2', log), _Named('first', log, priority=0)]))
    runner.register_hook(_Named('very_low_int', log), priority=90)
    names = [getattr(h, 'name', type(h).__name__) for h in runner.hooks]
    # equal priority: registration order (default hooks are registered before custom hooks)
    assert names == ['first', 'RuntimeInfoHook', 'high', 'DistSamplerSeedHook', 'normal1', 'normal2', 'LoggerHook',
                     'ParamSchedulerHook', 'low', 'ProgressHook', 'very_low_int',  # VERY_LOW, registered first
                     'StopFileHook']  # LOWEST: after every save
    runner.call_hook('before_run')
    assert log == ['first', 'high', 'normal1', 'normal2', 'low', 'very_low_int']


def test_default_hooks_can_be_replaced_and_extended(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=dict(
        logger=dict(type='LoggerHook', interval=7), checkpoint=None,
        early=dict(type='EarlyStoppingHook', monitor='accuracy'))))
    types = [type(h).__name__ for h in runner.hooks]
    assert 'CheckpointHook' not in types and types[-1] == 'EarlyStoppingHook'
    assert [h.interval for h in runner.hooks if isinstance(h, LoggerHook)] == [7]
    assert isinstance(runner.hooks[0], RuntimeInfoHook)


def test_val_and_test_return_metrics_with_load_from(tmp_path):
    trainer = Runner(**runner_kwargs(tmp_path / 'train', max_epochs=1))
    trainer.train()
    ckpt = str(tmp_path / 'train' / 'epoch_1.pth')
    kwargs = runner_kwargs(tmp_path / 'eval', load_from=ckpt, test_dataloader=runner_kwargs(tmp_path)['val_dataloader'],
                           test_cfg=dict(), test_evaluator=dict(type='CellAccuracy'))
    evaluator = Runner(**kwargs)
    val = evaluator.val()
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    assert all(torch.equal(v, saved[k]) for k, v in evaluator.model.state_dict().items())
    test = evaluator.test()
    assert val == test and 0 <= val['accuracy'] <= 100
    assert evaluator.message_hub.get_scalar('val/accuracy').current() == pytest.approx(val['accuracy'])


def test_missing_parts_raise_clear_errors(tmp_path):
    with pytest.raises(RuntimeError, match='optim_wrapper'):
        Runner(**runner_kwargs(tmp_path, optim_wrapper=None)).train()
    with pytest.raises(RuntimeError, match='train_dataloader and train_cfg'):
        Runner(**runner_kwargs(tmp_path, train_cfg=None)).train()
    with pytest.raises(RuntimeError, match='test_dataloader and test_evaluator'):
        Runner(**runner_kwargs(tmp_path)).test()
    with pytest.raises(KeyError, match='MissingModel'):
        _ = Runner(**runner_kwargs(tmp_path, model=dict(type='MissingModel'))).model


def test_objects_instead_of_configs(tmp_path):
    model = CellNet()
    from kiln.optim import build_optim_wrapper
    ow = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.05)))
    runner = Runner(**runner_kwargs(tmp_path, val=False, max_epochs=1, model=model, optim_wrapper=ow,
                                    default_hooks=dict(checkpoint=CheckpointHook(interval=1, save_last=False))))
    assert runner.train() is model and runner.optim_wrapper is ow
    assert (tmp_path / 'epoch_1.pth').is_file()


def test_two_runners_do_not_share_state(tmp_path):
    a = Runner(**runner_kwargs(tmp_path / 'a', val=False, max_epochs=1))
    b = Runner(**runner_kwargs(tmp_path / 'b', val=False, max_epochs=1))
    a.train()
    assert a.message_hub is not b.message_hub and a.logger is not b.logger
    assert 'train/loss' in a.message_hub.log_scalars and 'train/loss' not in b.message_hub.log_scalars
    a.close()
    b.close()


def test_init_weights_runs_once_and_never_over_loaded_weights(tmp_path):
    frozen = dict(optimizer=dict(type='SGD', lr=0.0))
    model = dict(type='CellNet', init_cfg=dict(type='Constant', val=0.5, layer='Linear'))
    runner = Runner(**runner_kwargs(tmp_path / 'a', val=False, max_epochs=1, model=model, optim_wrapper=frozen))
    runner.train()
    assert torch.all(runner.model.fc.weight == 0.5)  # init_cfg applied by train()
    with torch.no_grad():
        runner.model.fc.weight.fill_(1.0)
    runner.train()
    assert torch.all(runner.model.fc.weight == 1.0)  # not re-initialised by the second train()

    ckpt = str(tmp_path / 'a' / 'epoch_1.pth')
    loaded = Runner(**runner_kwargs(tmp_path / 'b', max_epochs=1, model=model, optim_wrapper=frozen, load_from=ckpt))
    loaded.val()
    loaded.train()  # weights loaded by val() survive: no init_weights afterwards
    assert torch.all(loaded.model.fc.weight == 1.0)


def test_errors_of_train_val_test_reach_the_log_file_once(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path / 'a', model=dict(type='MissingModel')))
    with pytest.raises(KeyError, match='MissingModel'):
        runner.train()  # the model cannot be built: on stderr and in the log file
    log = (tmp_path / 'a' / runner.timestamp / f'{runner.timestamp}.log').read_text()
    [line] = [ln for ln in log.splitlines() if 'ERROR' in ln]
    assert 'train failed: NotRegisteredError' in line and 'MissingModel' in line and '(raised at ' in line

    class Fails(Hook):
        def before_run(self, runner):
            runner.logger.error('hook says: bad data in x.json')
            raise ValueError('bad data in x.json')

    runner = Runner(**runner_kwargs(tmp_path / 'b', custom_hooks=[Fails()]))
    with pytest.raises(ValueError, match='bad data'):
        runner.val()
    log = (tmp_path / 'b' / runner.timestamp / f'{runner.timestamp}.log').read_text()
    assert [ln.split(' - ')[-1] for ln in log.splitlines() if 'ERROR' in ln] == ['hook says: bad data in x.json']
