"""Checkpoint paths through fsspec (memory:// and local), readable errors for wrong checkpoints, safetensors."""
import uuid

import pytest
import torch
from torch import nn

from kiln.checkpoint import (CheckpointError, find_latest_checkpoint, get_state_dict, load_checkpoint,
                             save_checkpoint, weights_to_cpu, write_last_checkpoint)
from kiln.checkpoint import read_checkpoint as _load_checkpoint
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


class Net(nn.Module):
    def __init__(self, out: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, out)


@pytest.mark.parametrize('scheme', ['memory', 'local'])
def test_save_find_and_load_through_fsspec(tmp_path, scheme):
    root = f'memory://kiln-{uuid.uuid4().hex}/run' if scheme == 'memory' else str(tmp_path / 'run')
    assert find_latest_checkpoint(root) is None
    src = Net()
    path = root + '/iter_4.pth'
    save_checkpoint(dict(meta=dict(iter=4), state_dict=weights_to_cpu(get_state_dict(src))), path)
    write_last_checkpoint(root, path)
    assert find_latest_checkpoint(root) == path
    dst = Net()
    assert load_checkpoint(dst, path, strict=True)['meta'] == dict(iter=4)
    assert torch.equal(dst.fc.weight, src.fc.weight)


def test_runner_checkpoints_to_a_memory_out_dir_and_resumes(tmp_path):
    out_dir = f'memory://kiln-{uuid.uuid4().hex}/ckpts'
    hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, out_dir=out_dir))
    runner = Runner(**runner_kwargs(tmp_path / 'work', max_epochs=1, val=False, default_hooks=hooks))
    runner.train()
    latest = find_latest_checkpoint(tmp_path / 'work')
    assert latest == f'{out_dir}/work/epoch_1.pth'
    resumed = Runner(**runner_kwargs(tmp_path / 'work', max_epochs=2, val=False, default_hooks=hooks,
                                     resume=True))
    resumed.train()
    assert resumed.iter == 2 * runner.iter and find_latest_checkpoint(tmp_path / 'work').endswith('epoch_2.pth')


def test_wrong_checkpoints_name_the_file_and_the_first_problem(tmp_path):
    save_checkpoint(dict(state_dict=Net(out=3).state_dict()), tmp_path / 'three.pth')
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint '.*three\.pth' does not match the model exactly "
                                              r'\(2 differing keys\); first: size mismatch for fc\.weight'):
        load_checkpoint(Net(), tmp_path / 'three.pth', strict=True)
    other = nn.Sequential(nn.Linear(2, 2))
    save_checkpoint(dict(state_dict=other.state_dict()), tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match=r"other\.pth' does not belong to this model.*first checkpoint key "
                                              r"'0\.weight', first model key 'conv\.weight'"):
        load_checkpoint(Net(), tmp_path / 'other.pth')  # even without strict: nothing would be loaded


def test_resume_from_another_models_checkpoint_is_a_clear_error(tmp_path):
    first = Runner(**runner_kwargs(tmp_path / 'a', max_epochs=1, val=False))
    first.train()
    wide = runner_kwargs(tmp_path / 'b', max_epochs=2, val=False, model=dict(type='CellNet', width=16),
                         resume=str(tmp_path / 'a' / 'epoch_1.pth'))
    with pytest.raises(CheckpointError, match=r"epoch_1\.pth' does not match the model.*first: size mismatch "
                                              r'for conv\.weight') as info:
        Runner(**wide).train()
    assert info.value.__cause__ is None and info.value.__context__ is None
    (tmp_path / 'bad.pth').write_bytes((tmp_path / 'a' / 'epoch_1.pth').read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"bad\.pth' is truncated, corrupt"):
        Runner(**runner_kwargs(tmp_path / 'c', val=False, resume=str(tmp_path / 'bad.pth'))).train()


def test_safetensors_round_trip_and_corrupt(tmp_path):
    from safetensors.torch import save_file
    src = Net()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / 'w.safetensors'))
    dst = Net()
    load_checkpoint(dst, tmp_path / 'w.safetensors', strict=True)
    assert torch.equal(dst.conv.weight, src.conv.weight)
    (tmp_path / 'x.safetensors').write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1')
    with pytest.raises(CheckpointError, match=r"x\.safetensors' is truncated, corrupt"):
        _load_checkpoint(tmp_path / 'x.safetensors')


def test_a_runner_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3))
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, default_hooks=hooks, custom_hooks=[dict(type='EMAHook')],
                                    param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.5),
                                    cfg=dict(note='kiln')))
    runner.train()
    ckpt = torch.load(tmp_path / 'iter_3.pth', weights_only=True)
    assert {'meta', 'state_dict', 'optimizer', 'param_schedulers', 'message_hub', 'hooks', 'rng_state',
            'ema_state_dict'} <= set(ckpt)
    meta = ckpt['meta']
    assert (meta['epoch'], meta['iter'], meta['seed']) == (0, 3, 0) and "note = 'kiln'" in meta['cfg']
    assert meta['kiln_version'] and meta['torch_version'] == str(torch.__version__)
    assert meta['dataset_meta'] == dict(classes=('RBC', 'WBC', 'Platelets'))
    assert set(ckpt['rng_state']) >= {'python', 'numpy', 'torch'}
    assert 'train/loss' in ckpt['message_hub']['log_scalars']
