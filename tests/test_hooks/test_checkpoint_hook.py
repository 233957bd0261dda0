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
    assert hook.saved == [str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'epoch_4.pth')]
    state = hook.state_dict()  # names relative to the directory they were written to
    assert (state['saved'], state['saved_dir']) == (['epoch_3.pth', 'epoch_4.pth'], str(tmp_path))


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


def test_published_keys_make_release_files(tmp_path):
    import hashlib
    import io
    runner = _train(tmp_path, dict(type='CheckpointHook', interval=1, save_best='score',
                                   published_keys=['meta', 'state_dict']), scores=[0.5, 0.9])
    hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    names = _names(tmp_path)
    assert 'epoch_2.pth' in names and 'best_score_epoch_2.pth' in names  # originals kept
    assert len(hook.published) == 2
    for path in hook.published:
        release = torch.load(path, weights_only=True)
        assert sorted(release) == ['meta', 'state_dict']
        buffer = io.BytesIO()
        torch.save(release, buffer)
        assert path.endswith(f'-{hashlib.sha256(buffer.getvalue()).hexdigest()[:8]}.pth')
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')


def test_out_dir_through_fsspec(tmp_path):
    import fsspec
    fs = fsspec.filesystem('memory')
    runner = _train(tmp_path, dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                   out_dir='memory://ckpts', published_keys=True))
    target = f'memory://ckpts/{tmp_path.name}'
    stored = sorted(p.rsplit('/', 1)[-1] for p in fs.ls(target.replace('memory://', '/'), detail=False))
    assert 'epoch_2.pth' in stored and 'epoch_1.pth' not in stored  # max_keep_ckpts removed through fsspec
    assert any(n.startswith('epoch_2-') for n in stored)  # published copy
    assert (tmp_path / 'last_checkpoint').read_text().strip() == f'{target}/epoch_2.pth'
    from kiln.runner import find_latest_checkpoint
    assert find_latest_checkpoint(str(tmp_path)) == f'{target}/epoch_2.pth'  # what resume=True reads
    with fsspec.open(f'{target}/epoch_2.pth', 'rb') as f:
        assert torch.load(f, weights_only=True)['meta']['epoch'] == 2
    fs.rm(target.replace('memory://', '/'), recursive=True)
    assert runner.epoch == 2


def test_less_keys_infer_the_rule(tmp_path):
    runner = _train(tmp_path, dict(type='CheckpointHook', interval=-1, save_best='score', less_keys=['sco']),
                    scores=[0.5, 0.3])
    hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    assert hook.best_score == {'score': 0.3}


def test_deferred_save_happens_with_a_val_loop_that_skips_after_val(tmp_path):
    from kiln.runner import ValLoop

    class BareValLoop(ValLoop):
        def run(self):
            self.runner.call_hook('before_val_epoch')
            for idx, batch in enumerate(self.dataloader):
                self.run_iter(idx, batch)
            metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
            self.runner.call_hook('after_val_epoch', metrics=metrics)
            return metrics

    runner = Runner(**runner_kwargs(tmp_path, max_epochs=2, default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', interval=1))))
    runner._val_loop = BareValLoop(runner, runner._val_dataloader_src, runner._val_evaluator)
    runner.train()
    assert _names(tmp_path) == ['epoch_1.pth', 'epoch_2.pth']
