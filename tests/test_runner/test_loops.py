import pytest
import torch

from kiln.hooks import Hook
from kiln.runner import EpochBasedTrainLoop, IterBasedTrainLoop, Runner
from test_runner.recorder import Recorder
from test_runner.toy import runner_kwargs

NO_CKPT = dict(checkpoint=None, logger=dict(type='LoggerHook', interval=2))


def _val_block(n):
    return ['before_val', 'before_val_epoch', *(['before_val_iter', 'after_val_iter'] * n), 'after_val_epoch',
            'after_val']


def test_epoch_loop_calls_hooks_in_mmengine_order(tmp_path):
    rec = Recorder()
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, default_hooks=NO_CKPT, custom_hooks=[rec]))
    runner.train()
    n_train, n_val = len(runner.train_dataloader), len(runner.val_dataloader)
    assert (n_train, n_val) == (6, 5)  # 22 train crops / 4, 18 val crops / 4
    epoch = ['before_train_epoch', *(['before_train_iter', 'after_train_iter'] * n_train), 'after_train_epoch']
    assert rec.calls == ['before_run', 'before_train', *epoch, *_val_block(n_val), *epoch, *_val_block(n_val),
                         'after_train', 'after_run']
    # runner.epoch / iter / batch_idx seen by the hooks (MMEngine semantics: 0-based, incremented afterwards)
    iters = [d for d in rec.details if d[0] == 'after_train_iter']
    assert [d[3] for d in iters] == list(range(6)) * 2
    assert [d[2] for d in iters] == list(range(12))
    assert [d[1] for d in rec.details if d[0] == 'after_train_epoch'] == [0, 1]
    assert [d[1] for d in rec.details if d[0] == 'after_val_epoch'] == [1, 2]
    assert (runner.epoch, runner.iter, runner.max_epochs, runner.max_iters) == (2, 12, 2, 12)


def test_validation_schedule(tmp_path):
    rec = Recorder()
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=5, default_hooks=NO_CKPT, custom_hooks=[rec],
                                    train_cfg=dict(by_epoch=True, max_epochs=5, val_begin=2, val_interval=2)))
    runner.train()
    # epochs 2 and 4 by the interval, epoch 5 because it is the last one
    assert [d[1] for d in rec.details if d[0] == 'after_val_epoch'] == [2, 4, 5]


def test_dynamic_intervals(tmp_path):
    rec = Recorder()
    cfg = dict(by_epoch=True, max_epochs=5, val_interval=3, dynamic_intervals=[(2, 1)])
    Runner(**runner_kwargs(tmp_path, default_hooks=NO_CKPT, custom_hooks=[rec], train_cfg=cfg)).train()
    assert [d[1] for d in rec.details if d[0] == 'after_val_epoch'] == [2, 3, 4, 5]


class _SetEpochSpy(Hook):
    def __init__(self):
        self.epochs = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.epochs.append(runner.train_dataloader.sampler.epoch)


def test_iter_loop_cycles_data_and_validates_by_iteration(tmp_path):
    rec, spy = Recorder(), _SetEpochSpy()
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=NO_CKPT, custom_hooks=[rec, spy],
                                    train_cfg=dict(by_epoch=False, max_iters=14, val_interval=5)))
    runner.train()
    assert isinstance(runner.train_loop, IterBasedTrainLoop)
    assert rec.calls.count('before_train_epoch') == 1 and rec.calls.count('after_train_iter') == 14
    assert [d[2] for d in rec.details if d[0] == 'after_val_epoch'] == [5, 10, 14]
    assert spy.epochs == [0] * 6 + [1] * 6 + [2] * 2  # the sampler gets set_epoch when the data runs out
    assert (runner.iter, runner.max_iters, runner.epoch, runner.max_epochs) == (14, 14, 0, 1)
    assert runner.log_processor.by_epoch is False  # follows train_cfg


class _StopAt(Hook):
    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            runner.train_loop.stop_training = True


@pytest.mark.parametrize('train_cfg', [dict(by_epoch=True, max_epochs=3), dict(by_epoch=False, max_iters=20)])
def test_stop_training_ends_the_loop(tmp_path, train_cfg):
    rec = Recorder()
    runner = Runner(**runner_kwargs(tmp_path, val=False, default_hooks=NO_CKPT, custom_hooks=[_StopAt(4), rec],
                                    train_cfg=train_cfg))
    runner.train()
    assert runner.iter == 4
    assert rec.calls.count('after_train_epoch') == 1 and rec.calls[-2:] == ['after_train', 'after_run']


def test_val_loop_restores_train_mode_and_returns_metrics(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=NO_CKPT))
    runner.model.train()
    metrics = runner.val_loop.run()
    assert set(metrics) == {'accuracy'} and 0 <= metrics['accuracy'] <= 100
    assert runner.model.training
    assert runner.val_loop.evaluator.dataset_meta == dict(classes=('RBC', 'WBC', 'Platelets'))
    assert runner.visualizer.dataset_meta == dict(classes=('RBC', 'WBC', 'Platelets'))


def test_val_loop_fp16_autocast(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=NO_CKPT, val_cfg=dict(fp16=True)))
    assert runner.val_loop.fp16
    assert 'accuracy' in runner.val()


def test_loop_argument_checks(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, default_hooks=NO_CKPT))
    with pytest.raises(ValueError, match='max_epochs'):
        EpochBasedTrainLoop(runner, runner.train_dataloader, max_epochs=0)
    with pytest.raises(ValueError, match='max_iters'):
        IterBasedTrainLoop(runner, runner.train_dataloader, max_iters=2.5)
    with pytest.raises(ValueError, match='val_evaluator is required'):
        Runner(**runner_kwargs(tmp_path, val_evaluator=None)).val()


def test_train_step_outputs_reach_the_hooks(tmp_path):
    class Grab(Hook):
        outputs = None

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            Grab.outputs = outputs

    Runner(**runner_kwargs(tmp_path, val=False, max_epochs=1, default_hooks=NO_CKPT, custom_hooks=[Grab()])).train()
    assert set(Grab.outputs) == {'loss', 'loss_cls'}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
               for v in Grab.outputs.values())


def test_custom_loop_from_the_docs_through_LOOPS(tmp_path):
    """MMEngine's "Customize Loop" example with kiln imports. Corrected where the docs' code cannot run in MMEngine
    either: ``BaseLoop(runner, dataloader)`` takes no evaluator, the method is ``call_hook``, hooks receive the
    runner first and ``after_val_epoch`` gets the metrics."""
    from kiln.hooks import Hook
    from kiln.registry import HOOKS, LOOPS
    from kiln.runner import BaseLoop
    from test_runner.toy import loader_cfg

    @LOOPS.register_module(force=True)
    class CustomValLoop(BaseLoop):
        def __init__(self, runner, dataloader, evaluator, dataloader2):
            super().__init__(runner, dataloader)
            self.evaluator = runner.build_evaluator(evaluator)
            self.dataloader2 = runner.build_dataloader(dataloader2)

        def run_iter(self, idx, data_batch):
            outputs = self.runner.model.val_step(data_batch)
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
            return outputs

        def run(self):
            self.runner.call_hook('before_val_epoch')
            for idx, data_batch in enumerate(self.dataloader):
                self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
                outputs = self.run_iter(idx, data_batch)
                self.runner.call_hook('after_val_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)
            metric = self.evaluator.evaluate(len(self.dataloader.dataset))
            # add extra loop for validation purpose
            for idx, data_batch in enumerate(self.dataloader2):
                self.runner.call_hook('before_valloader2_iter', batch_idx=idx, data_batch=data_batch)
                outputs = self.run_iter(idx, data_batch)
                self.runner.call_hook('after_valloader2_iter', batch_idx=idx, data_batch=data_batch,
                                      outputs=outputs)
            metric2 = self.evaluator.evaluate(len(self.dataloader2.dataset))
            metrics = {**metric, **{f'{k}_2': v for k, v in metric2.items()}}
            self.runner.call_hook('after_val_epoch', metrics=metrics)
            return metrics

    @HOOKS.register_module(force=True)
    class CustomValHook(Hook):
        def __init__(self):
            self.calls = 0

        def before_valloader2_iter(self, runner, batch_idx, data_batch):
            self.calls += 1

        def after_valloader2_iter(self, runner, batch_idx, data_batch, outputs):
            assert len(outputs) == len(data_batch['inputs'])

    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, default_hooks=NO_CKPT,
                                    val_cfg=dict(type='CustomValLoop', dataloader2=loader_cfg('test', shuffle=False)),
                                    custom_hooks=[dict(type='CustomValHook')]))
    runner.train()
    assert type(runner.val_loop).__name__ == 'CustomValLoop'
    hook = next(h for h in runner.hooks if type(h).__name__ == 'CustomValHook')
    assert hook.calls == len(runner.val_loop.dataloader2)
    assert {'accuracy', 'accuracy_2'} <= set(runner.message_hub.log_scalars.keys()) | {
        k.split('/', 1)[-1] for k in runner.message_hub.log_scalars.keys()}


def test_randomness_seed_is_drawn_logged_and_deterministic_applied(tmp_path):
    from pathlib import Path
    runner = Runner(**runner_kwargs(tmp_path, val=False, randomness=dict(seed=None), log_level='INFO'))
    assert isinstance(runner.seed, int)
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert f'seed: {runner.seed}' in log
    runner.close()
    try:
        runner = Runner(**runner_kwargs(tmp_path / 'det', val=False, randomness=dict(seed=3, deterministic=True)))
        assert runner.seed == 3 and torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
