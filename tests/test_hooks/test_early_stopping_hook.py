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
