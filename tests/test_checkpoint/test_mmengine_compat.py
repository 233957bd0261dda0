"""MMEngine-saved checkpoints: read through the allow-list, converted to kiln's plain layout, nothing executed."""
import io
from pathlib import Path

import pytest
import torch

from kiln.checkpoint.mmengine_compat import (UnsafeCheckpointError, convert_mmengine_checkpoint,
                                             is_mmengine_checkpoint, load_mmengine_checkpoint)

MMENGINE_CKPT = Path(__file__).parents[1] / 'data' / 'mmengine_checkpoint' / 'epoch_1.pth'


def test_plain_weights_only_load_refuses_the_mmengine_file():
    with pytest.raises(Exception, match='HistoryBuffer|Unsupported global'):
        torch.load(MMENGINE_CKPT, weights_only=True)


def test_allow_list_load_converts_to_plain_containers():
    ckpt = load_mmengine_checkpoint(MMENGINE_CKPT, MMENGINE_CKPT.name)
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 6
    assert ckpt['meta']['converted_from'] == 'mmengine'
    assert ckpt['meta']['dataset_meta'] == {'classes': ('RBC', 'WBC', 'Platelets')}
    assert set(ckpt['state_dict']) == {'conv.weight', 'conv.bias', 'fc.weight', 'fc.bias'}
    warmup, multistep = ckpt['param_schedulers']
    assert warmup['last_step'] == 2 and warmup['base_values'] == [0.1]
    assert multistep['milestones'] == {1: 1} and type(multistep['milestones']) is dict
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.01)
    lr = ckpt['message_hub']['log_scalars']['train/lr']
    assert lr['log_history'] == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.1])
    assert lr['count_history'] == [1.0] * 6
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], float)  # was a numpy float64
    # the converted checkpoint is what kiln writes: plain data that weights_only=True reads back
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=True)
    torch.testing.assert_close(again['state_dict']['fc.weight'], ckpt['state_dict']['fc.weight'])


class _Payload:
    def __reduce__(self):
        return (print, ('this must never run',))


def test_objects_outside_the_allow_list_are_refused_by_name_and_never_run(capsys):
    buf = io.BytesIO()
    torch.save({'meta': {'mmengine_version': '0.10.7'}, 'x': _Payload()}, buf)
    with pytest.raises(UnsafeCheckpointError, match=r"'evil\.pth'.*\(print\)"):
        load_mmengine_checkpoint(buf, 'evil.pth')
    assert 'must never run' not in capsys.readouterr().out


def test_getattr_is_only_allowed_on_history_buffers():
    import builtins
    import collections

    class GetattrPayload:  # getattr on an allowed class is still refused: only HistoryBuffer methods pass
        def __reduce__(self):
            return (builtins.getattr, (collections.OrderedDict, 'fromkeys'))

    buf = io.BytesIO()
    torch.save({'x': GetattrPayload()}, buf)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_mmengine_checkpoint(buf, 'getattr.pth')


def test_kiln_checkpoints_pass_through_unchanged():
    ckpt = {'meta': {'epoch': 3}, 'state_dict': {'w': torch.ones(2)}}
    assert not is_mmengine_checkpoint(ckpt)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    loaded = load_mmengine_checkpoint(buf, 'kiln.pth')
    assert loaded['meta'] == {'epoch': 3}
    converted = convert_mmengine_checkpoint({'meta': {}, 'param_schedulers': []})
    assert converted['meta']['converted_from'] == 'mmengine'


# ------------------------------------------------------------------ through the Runner and the CLI
def _runner(tmp_path, **kw):
    from kiln.runner import Runner
    from test_runner.toy import runner_kwargs
    args = runner_kwargs(tmp_path, max_epochs=2, val=False,
                         optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
                         param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
                                          dict(type='MultiStepLR', milestones=[1], gamma=0.1, by_epoch=True)])
    args.update(kw)
    return Runner(**args)


def test_load_from_an_mmengine_checkpoint_loads_its_weights(tmp_path):
    from kiln.hooks import Hook
    ref = load_mmengine_checkpoint(MMENGINE_CKPT, 'ref')['state_dict']
    seen = {}

    class Spy(Hook):
        def before_train(self, runner):
            seen.update({k: v.detach().clone() for k, v in runner.model.state_dict().items()})
            seen['start'] = (runner.epoch, runner.iter)

    runner = _runner(tmp_path, load_from=str(MMENGINE_CKPT), train_cfg=dict(by_epoch=True, max_epochs=1),
                     custom_hooks=[Spy()])
    runner.train()
    assert seen.pop('start') == (0, 0)  # load_from takes the weights only, training starts afresh
    for k, v in ref.items():
        torch.testing.assert_close(seen[k], v)


def test_resume_from_an_mmengine_checkpoint_continues_its_schedule(tmp_path):
    import shutil
    shutil.copy(MMENGINE_CKPT, tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    ref = load_mmengine_checkpoint(MMENGINE_CKPT, 'ref')
    seen = {}

    from kiln.hooks import Hook

    class Spy(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if not seen:
                seen.update(epoch=runner.epoch, iter=runner.iter,
                            lr=runner.optim_wrapper.optimizer.param_groups[0]['lr'],
                            buf=runner.optim_wrapper.optimizer.state_dict()['state'][0]['momentum_buffer'].clone(),
                            w=runner.model.fc.weight.detach().clone(),
                            loss_hist=list(runner.message_hub.get_scalar('train/loss').data[0]))

    runner = _runner(tmp_path, resume=True, custom_hooks=[Spy()])
    runner.train()
    assert (seen['epoch'], seen['iter']) == (1, 6)  # MMEngine's epoch 1 / iteration 6
    assert seen['lr'] == pytest.approx(0.01)  # warm-up done, MultiStepLR decayed at epoch 1
    torch.testing.assert_close(seen['buf'], ref['optimizer']['state'][0]['momentum_buffer'])
    torch.testing.assert_close(seen['w'], ref['state_dict']['fc.weight'])
    assert seen['loss_hist'] == pytest.approx(ref['message_hub']['log_scalars']['train/loss']['log_history'])
    assert runner.epoch == 2 and runner.iter == 12


def test_kiln_test_cli_evaluates_an_mmengine_checkpoint(tmp_path):
    import subprocess
    import sys
    repo = Path(__file__).parents[2]
    cfg = tmp_path / 'cellnet.py'
    cfg.write_text(
        "custom_imports = dict(imports=['test_runner.toy'])\n"
        "model = dict(type='CellNet')\n"
        "test_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='val'), batch_size=4, num_workers=0,\n"
        "                       sampler=dict(type='DefaultSampler', shuffle=False))\n"
        "test_cfg = dict()\ntest_evaluator = dict(type='CellAccuracy')\n")
    env = dict(__import__('os').environ, PYTHONPATH=f"{repo}:{repo / 'tests'}")
    proc = subprocess.run([sys.executable, '-m', 'kiln.cli', 'test', str(cfg), str(MMENGINE_CKPT),
                           '--work-dir', str(tmp_path / 'wd')], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'accuracy' in proc.stdout + proc.stderr
