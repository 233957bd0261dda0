import pytest
import torch

from kiln.hooks import CheckpointHook
from kiln.runner import Runner
from test_hooks.scripted import ScriptedMetric
from test_runner.toy import runner_kwargs


def _train(work_dir, hook_cfg, scores=None, **kwargs):
    extra = {}
    if scores is not None:
        extra['val_evaluator'] = dict(type=ScriptedMetric, values=scores, **kwargs.pop('metric', {}))
    runner = Runner(**runner_kwargs(work_dir, default_hooks=dict(checkpoint=hook_cfg), val=True, **extra, **kwargs))
    runner.train()
    return runner


def _names(path, pattern='*.pth'):
    return sorted(p.name for p in path.glob(pattern))


def test_interval_and_save_last(tmp_path):
    _train(tmp_path, dict(type='CheckpointHook', interval=2), max_epochs=5)
    assert _names(tmp_path) == ['epoch_2.pth', 'epoch_4.pth', 'epoch_5.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_5.pth')


def test_max_keep_ckpts_removes_the_oldest(tmp_path):
    runner = _train(tmp_path, dict(type='CheckpointHook', interval=1, max_keep_ckpts=2), max_epochs=4)
    assert _names(tmp_path) == ['epoch_3.pth', 'epoch_4.pth']
    hook = [h for h in runner.hooks if isinstance(h, CheckpointHook)][0]
    assert hook.state_dict()['saved'] == [str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'epoch_4.pth')]


def test_by_iteration_with_save_begin_and_template(tmp_path):
    _train(tmp_path, dict(type='CheckpointHook', by_epoch=False, interval=4, save_begin=5, save_last=False,
                          filename_tmpl='step{}.pth'), max_epochs=2)
    assert _names(tmp_path) == ['step5.pth', 'step9.pth']  # 12 iterations: 5, 9 (13 > 12, save_last off)


def test_out_dir(tmp_path):
    _train(tmp_path / 'work', dict(type='CheckpointHook', interval=1, out_dir=str(tmp_path / 'out')), max_epochs=1)
    assert _names(tmp_path / 'out' / 'work') == ['epoch_1.pth']
    assert (tmp_path / 'work' / 'last_checkpoint').read_text() == str(tmp_path / 'out' / 'work' / 'epoch_1.pth')


def test_save_best_greater_keeps_only_the_best(tmp_path):
    runner = _train(tmp_path, dict(type='CheckpointHook', interval=-1, save_best='acc/score', save_last=False),
                    scores=[0.2, 0.5, 0.4, 0.7], metric=dict(prefix='acc'), max_epochs=4)
    assert _names(tmp_path) == ['best_acc_score_epoch_4.pth']
    hook = [h for h in runner.hooks if isinstance(h, CheckpointHook)][0]
    assert hook.best_score == {'acc/score': 0.7}
    ckpt = torch.load(tmp_path / 'best_acc_score_epoch_4.pth', weights_only=True)
    assert ckpt['meta']['epoch'] == 4 and 'optimizer' not in ckpt
    assert ckpt['hooks']['CheckpointHook']['best_score'] == {'acc/score': 0.7}


def test_save_best_rule_inferred_less_for_loss_and_auto(tmp_path):
    _train(tmp_path / 'less', dict(type='CheckpointHook', save_best='val_loss'), scores=[0.9, 0.3, 0.6],
           metric=dict(key='val_loss'), max_epochs=3)
    assert _names(tmp_path / 'less', 'best_*') == ['best_val_loss_epoch_2.pth']
    _train(tmp_path / 'auto', dict(type='CheckpointHook', save_best='auto', rule='less'), scores=[0.9, 0.3, 0.1],
           max_epochs=3)
    assert _names(tmp_path / 'auto', 'best_*') == ['best_score_epoch_3.pth']  # 'score' is the first key


def test_save_best_by_iteration(tmp_path):
    _train(tmp_path, dict(type='CheckpointHook', by_epoch=False, interval=100, save_best='score'),
           scores=[1.0, 2.0, 0.5], train_cfg=dict(by_epoch=False, max_iters=9, val_interval=3))
    assert _names(tmp_path, 'best_*') == ['best_score_iter_6.pth']


def test_best_score_survives_resume(tmp_path):
    hook = dict(type='CheckpointHook', interval=1, save_best='score')
    _train(tmp_path, hook, scores=[0.5, 0.9], max_epochs=2)
    runner = _train(tmp_path, hook, scores=[0.7], max_epochs=3, resume=True)
    # 0.7 after epoch 3 is worse than the restored best 0.9: the epoch-2 best stays
    assert _names(tmp_path, 'best_*') == ['best_score_epoch_2.pth']
    assert [h for h in runner.hooks if isinstance(h, CheckpointHook)][0].best_score == {'score': 0.9}


def test_argument_and_metric_errors(tmp_path):
    with pytest.raises(ValueError, match="'greater', 'less'"):
        CheckpointHook(save_best='a', rule='bigger')
    with pytest.raises(ValueError, match='2 rules for 1'):
        CheckpointHook(save_best='a', rule=['less', 'less'])
    with pytest.raises(KeyError, match="save_best='missing'.*'other', 'score'"):
        _train(tmp_path, dict(type='CheckpointHook', save_best='missing'), scores=[1.0], max_epochs=1)


def test_standalone_val_saves_no_best_checkpoint(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, val_evaluator=dict(type=ScriptedMetric, values=[1.0]),
                                    default_hooks=dict(checkpoint=dict(type='CheckpointHook', save_best='score'))))
    runner.val()
    assert _names(tmp_path) == []
