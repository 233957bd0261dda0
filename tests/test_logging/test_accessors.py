"""MMEngine-style accessors (MessageHub / MMLogger / Visualizer.get_current_instance(), print_log('current')) are
scoped to the running Runner: set while train()/val()/test() runs, restored after, never shared."""
import contextvars
import logging

import pytest

from kiln.hooks import Hook
from kiln.logging import MessageHub, MMLogger, print_log
from kiln.logging.current import get_current_runner
from kiln.registry import MODELS
from kiln.runner import Runner
from kiln.visualization import Visualizer
from test_runner.toy import CellNet, runner_kwargs


def _current():
    return (MessageHub.get_current_instance(), MMLogger.get_current_instance(), Visualizer.get_current_instance())


def _parts(runner):
    return (runner.message_hub, runner.logger, runner.visualizer)


@pytest.mark.parametrize('accessor', [MessageHub.get_current_instance, MMLogger.get_current_instance,
                                      Visualizer.get_current_instance])
def test_no_runner_raises_naming_the_accessor(accessor):
    name = accessor.__qualname__.split('.')[0]
    with pytest.raises(RuntimeError, match=rf'{name}\.get_current_instance\(\): no kiln Runner is running'):
        accessor()


def test_print_log_current_without_runner_prints(capsys):
    print_log('outside any run', logger='current')
    assert capsys.readouterr().out == 'outside any run\n'


@MODELS.register_module(force=True)
class MMEngineStyleNet(CellNet):
    """A model written as MMEngine code is: it asks the global accessors for the hub and the logger."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        hub = MessageHub.get_current_instance()
        hub.update_info('forward_calls', hub.get_info('forward_calls', 0) + 1)
        self.seen_hubs.add(id(hub))
        return super().forward(inputs, data_samples, mode)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen_hubs = set()


class RecordCurrent(Hook):
    """Records what the accessors return inside hooks; logs through print_log(logger='current')."""

    def __init__(self, tag):
        self.tag = tag
        self.seen = []

    def before_train_epoch(self, runner):
        self.seen.append(('train', _current()))
        print_log(f'{self.tag} epoch {runner.epoch}', logger='current', level=logging.WARNING)

    def before_val_epoch(self, runner):
        self.seen.append(('val', _current()))


class RunOtherRunner(Hook):
    """In the outer runner's hook: run a whole second runner, then check the outer one is current again."""

    def __init__(self, inner):
        self.inner = inner
        self.after_inner = None

    def after_train_epoch(self, runner):
        if runner.epoch == 1:
            self.inner.train()
            self.after_inner = _current()


def test_two_runners_nested_scoping(tmp_path, caplog):
    inner_rec = RecordCurrent('inner')
    inner = Runner(**runner_kwargs(tmp_path / 'inner', max_epochs=1, val=False, model=dict(type='MMEngineStyleNet'),
                                   custom_hooks=[inner_rec]))
    outer_rec = RecordCurrent('outer')
    nest = RunOtherRunner(inner)
    outer = Runner(**runner_kwargs(tmp_path / 'outer', max_epochs=2, model=dict(type='MMEngineStyleNet'),
                                   custom_hooks=[outer_rec, nest]))
    assert get_current_runner() is None
    outer.train()
    assert get_current_runner() is None  # restored after the run

    assert [s for s, _ in outer_rec.seen] == ['train', 'val', 'train', 'val']
    assert all(parts == _parts(outer) for _, parts in outer_rec.seen)
    assert inner_rec.seen == [('train', _parts(inner))]
    assert nest.after_inner == _parts(outer)  # the inner run ended: the outer runner is current again
    assert set(map(id, _parts(inner))).isdisjoint(map(id, _parts(outer)))  # never shared

    # the models' forward wrote into their own runner's hub only
    assert outer.model.seen_hubs == {id(outer.message_hub)} and inner.model.seen_hubs == {id(inner.message_hub)}
    n_outer = outer.message_hub.get_info('forward_calls')
    n_inner = inner.message_hub.get_info('forward_calls')
    assert n_inner == len(inner.train_dataloader)  # one epoch, no validation
    assert n_outer == 2 * len(outer.train_dataloader) + 2 * len(outer.val_dataloader)

    # print_log('current') went to each runner's own log file
    outer_log = (tmp_path / 'outer' / outer.timestamp / f'{outer.timestamp}.log').read_text()
    inner_log = (tmp_path / 'inner' / inner.timestamp / f'{inner.timestamp}.log').read_text()
    assert 'outer epoch 0' in outer_log and 'outer epoch 1' in outer_log and 'inner' not in outer_log
    assert 'inner epoch 0' in inner_log and 'outer' not in inner_log
    outer.close()
    inner.close()


def test_val_and_test_scope_and_restore_on_error(tmp_path):
    rec = RecordCurrent('r')
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, custom_hooks=[rec], test_dataloader=None))
    runner.val()
    assert rec.seen == [('val', _parts(runner))]

    class Boom(Hook):
        def before_val_epoch(self, runner):
            assert MessageHub.get_current_instance() is runner.message_hub
            raise ValueError('boom')

    runner.register_hook(Boom())
    with pytest.raises(ValueError, match='boom'):
        runner.val()
    assert get_current_runner() is None  # reset even when the run raised
    with pytest.raises(RuntimeError, match='MessageHub.get_current_instance'):
        MessageHub.get_current_instance()
    runner.close()


def test_scope_copies_into_context_but_not_other_runners(tmp_path):
    """A copied context (what a thread needs to be handed the scope) sees the runner that was current."""
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False))
    seen = []

    class Probe(Hook):
        def before_train_epoch(self, runner):
            ctx = contextvars.copy_context()
            seen.append(ctx.run(MessageHub.get_current_instance))

    runner.register_hook(Probe())
    runner.train()
    assert seen == [runner.message_hub]
    assert isinstance(runner.logger, MMLogger) and isinstance(runner.logger, logging.Logger)
    runner.close()
