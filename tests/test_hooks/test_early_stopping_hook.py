import math

import pytest

from kiln.hooks import EarlyStoppingHook
from kiln.runner import Runner
from test_hooks.scripted import ScriptedMetric
from test_runner.toy import runner_kwargs


def _train(tmp_path, scores, **hook):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=10, val_evaluator=dict(type=ScriptedMetric, values=scores),
                                    custom_hooks=[dict(type='EarlyStoppingHook', monitor='score', **hook)],
                                    default_hooks=dict(checkpoint=None)))
    runner.train()
    return runner


def test_stops_after_patience_without_improvement(tmp_path):
    runner = _train(tmp_path, [0.5, 0.7, 0.75, 0.72, 0.79, 0.9], patience=3, min_delta=0.1)
    assert runner.epoch == 5  # best 0.7 at epoch 2; 0.75, 0.72, 0.79 do not beat it by 0.1


def test_less_rule_threshold_and_non_finite(tmp_path):
    assert _train(tmp_path / 'a', [3.0, 2.0, 0.5], rule='less', stopping_threshold=1.0).epoch == 3
    assert _train(tmp_path / 'b', [1.0, math.nan], patience=5).epoch == 2


def test_state_dict_roundtrip_and_errors():
    hook = EarlyStoppingHook('loss')
    assert hook.rule == 'less'
    hook.load_state_dict(dict(best_score=0.3, wait_count=2))
    assert hook.state_dict() == dict(best_score=0.3, wait_count=2)
    with pytest.raises(ValueError, match='patience'):
        EarlyStoppingHook('acc', patience=0)
    with pytest.raises(ValueError, match='rule'):
        EarlyStoppingHook('acc', rule='up')


def test_patience_survives_a_resume(tmp_path):
    scores = [0.5, 0.7, 0.75, 0.72, 0.79, 0.9]
    full = _train(tmp_path / 'full', scores, patience=3, min_delta=0.1)
    # the same run, interrupted after epoch 3 (wait_count 1) and resumed from its checkpoint
    hooks = [dict(type='EarlyStoppingHook', monitor='score', patience=3, min_delta=0.1)]
    first = Runner(**runner_kwargs(tmp_path / 'part', max_epochs=3, custom_hooks=hooks,
                                   val_evaluator=dict(type=ScriptedMetric, values=scores[:3])))
    first.train()
    hook = next(h for h in first.hooks if isinstance(h, EarlyStoppingHook))
    assert hook.state_dict() == dict(best_score=0.7, wait_count=1)
    resumed = Runner(**runner_kwargs(tmp_path / 'part', max_epochs=10, resume=True, custom_hooks=hooks,
                                     val_evaluator=dict(type=ScriptedMetric, values=scores[3:])))
    resumed.train()
    assert resumed.epoch == full.epoch == 5


def test_monitor_val_loss_stops_training(tmp_path):
    # min_delta larger than any possible improvement: stops after patience + 1 validations
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=10, val_cfg=dict(compute_loss=True),
                                    default_hooks=dict(checkpoint=None),
                                    custom_hooks=[dict(type='EarlyStoppingHook', monitor='val/loss',
                                                       min_delta=100.0, patience=2)]))
    runner.train()
    assert runner.epoch == 3


def test_missing_monitor_warns_unless_strict(tmp_path):
    def hooks(strict):
        return [dict(type='EarlyStoppingHook', monitor='nope', strict=strict, patience=1)]

    runner = Runner(**runner_kwargs(tmp_path / 'a', max_epochs=2, custom_hooks=hooks(False),
                                    default_hooks=dict(checkpoint=None)))
    runner.train()
    assert runner.epoch == 2
    runner = Runner(**runner_kwargs(tmp_path / 'b', max_epochs=2, custom_hooks=hooks(True),
                                    default_hooks=dict(checkpoint=None)))
    with pytest.raises(KeyError, match="monitor='nope' is not one of the validation metrics"):
        runner.train()
