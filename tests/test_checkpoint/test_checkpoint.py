import datetime
import logging
import os

import numpy as np
import pytest
import torch
from torch import nn

import kiln.checkpoint.io as ckpt_mod
from kiln.checkpoint import (CheckpointError, find_latest_checkpoint, get_state_dict, load_checkpoint,
                             load_state_dict, save_checkpoint, weights_to_cpu, write_last_checkpoint)
from kiln.checkpoint import read_checkpoint as _load_checkpoint


class Net(nn.Module):
    def __init__(self, out: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, out)


def make_checkpoint(model: nn.Module) -> dict:
    return dict(meta=dict(epoch=3, iter=300, seed=0, cfg="model = dict(type='Net')",
                          dataset_meta=dict(classes=('RBC', 'WBC', 'Platelets'), palette=[(220, 20, 60)])),
                state_dict=weights_to_cpu(get_state_dict(model)),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict(),
                message_hub=dict(log_scalars={}, runtime_info={'eta': 1.0}))


def test_round_trip_weights_only(tmp_path):
    torch.manual_seed(0)
    src = Net()
    path = tmp_path / 'deep' / 'epoch_3.pth'
    save_checkpoint(make_checkpoint(src), path)
    assert torch.load(path, weights_only=True)['meta']['epoch'] == 3
    dst = Net()
    checkpoint = load_checkpoint(dst, str(path))
    assert checkpoint['meta']['dataset_meta']['classes'] == ('RBC', 'WBC', 'Platelets')
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k
    assert [p.name for p in tmp_path.joinpath('deep').iterdir()] == ['epoch_3.pth']  # no temp files left


def test_rejects_non_plain_values_with_key_path(tmp_path):
    checkpoint = make_checkpoint(Net())
    checkpoint['meta']['dataset_meta']['palette'][0] = np.array([1, 2, 3])
    path = tmp_path / 'bad.pth'
    with pytest.raises(TypeError, match=r'meta\.dataset_meta\.palette\[0\] is a numpy\.ndarray'):
        save_checkpoint(checkpoint, path)
    checkpoint['meta']['dataset_meta']['palette'][0] = (1, 2, 3)
    checkpoint['meta']['seed'] = np.float64(0.5)  # a float subclass: torch.load(weights_only) refuses it
    with pytest.raises(TypeError, match=r'meta\.seed is a numpy\.float64.*tolist'):
        save_checkpoint(checkpoint, path)
    with pytest.raises(TypeError, match=r'optimizer\.extra\[1\]'):
        save_checkpoint(dict(optimizer=dict(extra=[1, object()])), path)
    with pytest.raises(TypeError, match='must be a dict'):
        save_checkpoint([1], path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / 'latest.pth'
    save_checkpoint(dict(state_dict={'w': torch.ones(3)}), path)
    good = path.read_bytes()
    real_save = torch.save

    def save_then_fail(obj, f):
        real_save(obj, f)  # half of the bytes reach the disk, then the writer dies
        f.seek(f.tell() // 2)
        f.truncate()
        raise OSError('No space left on device')

    monkeypatch.setattr(ckpt_mod.torch, 'save', save_then_fail)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint(dict(state_dict={'w': torch.zeros(1000)}), path)
    with pytest.raises(OSError):
        save_checkpoint(dict(state_dict={'w': torch.zeros(10)}), tmp_path / 'new.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['latest.pth']
    assert path.read_bytes() == good


def test_get_state_dict_unwraps_and_does_not_copy():
    model = Net()
    wrapped = nn.DataParallel(model)
    assert all(k.startswith('module.') for k in wrapped.state_dict())
    sd = get_state_dict(wrapped)
    assert list(sd) == list(model.state_dict())
    assert sd['fc.weight'].data_ptr() == model.fc.weight.data_ptr() and not sd['fc.weight'].requires_grad
    cpu = weights_to_cpu(sd)
    assert cpu._metadata == sd._metadata and cpu['fc.weight'].device.type == 'cpu'


def test_load_state_dict_reports_everything_once():
    model = Net(out=2)
    before = model.fc.weight.detach().clone()
    source = Net(out=3).state_dict()  # fc has 3 outputs: shape mismatch
    conv_w = source['conv.weight'].clone()
    del source['bn.running_mean']
    source['extra.weight'] = torch.zeros(1)
    with pytest.warns(UserWarning) as record:
        result = load_state_dict(model, source)
    msg = str(record[0].message)
    assert 'size mismatch for fc.weight: copying a param with shape [3, 4] from checkpoint, ' \
           'the shape in current model is [2, 4].' in msg
    assert 'unexpected key in source state_dict: extra.weight' in msg
    assert 'missing keys in source state_dict: bn.running_mean' in msg
    assert torch.equal(model.fc.weight, before)  # mismatched tensor skipped
    assert torch.equal(model.conv.weight, conv_w)  # the rest loaded
    assert result.missing_keys == ['bn.running_mean'] and result.unexpected_keys == ['extra.weight']
    assert [k for k, _, _ in result.mismatched_keys] == ['fc.weight', 'fc.bias']
    with pytest.raises(RuntimeError, match='(?s)size mismatch for fc.bias.*unexpected.*missing'):
        load_state_dict(model, source, strict=True)


def test_load_state_dict_logs_to_given_logger():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.Logger('t')
    logger.addHandler(Keep())
    sd = Net().state_dict()
    sd['extra'] = torch.zeros(1)
    load_state_dict(Net(), sd, logger=logger)
    assert len(records) == 1 and records[0].levelno == logging.WARNING and 'extra' in records[0].getMessage()


def test_load_checkpoint_revises_ddp_prefix(tmp_path):
    src = Net()
    path = tmp_path / 'ddp.pth'
    save_checkpoint(dict(state_dict=nn.DataParallel(src).state_dict()), path)
    dst = Net()
    load_checkpoint(dst, path, strict=True)  # 'module.' stripped by the default revise_keys
    assert torch.equal(dst.conv.weight, src.conv.weight)
    save_checkpoint(dict(src.state_dict()), tmp_path / 'bare.pth')  # a bare state dict works too
    load_checkpoint(Net(), tmp_path / 'bare.pth', strict=True)
    with pytest.raises(RuntimeError, match='missing keys'):
        load_checkpoint(Net(), path, strict=True, revise_keys=[])


def test_load_errors_are_clear(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(missing)
    good = tmp_path / 'good.pth'
    save_checkpoint(dict(state_dict={'w': torch.ones(100)}), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'definitely not a checkpoint')
    for bad in (truncated, garbage):
        with pytest.raises(CheckpointError, match='truncated, corrupt') as info:
            _load_checkpoint(bad)
        assert str(bad) in str(info.value) and info.value.__context__ is None
    numpy_meta = tmp_path / 'numpy_meta.pth'  # NumPy scalars are data: read through the allow-list, made plain
    torch.save({'meta': {'score': np.float64(0.5)}, 'state_dict': Net().state_dict()}, numpy_meta)
    meta = load_checkpoint(Net(), numpy_meta)['meta']
    assert meta == {'score': 0.5} and type(meta['score']) is float
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'meta': {'when': datetime.datetime(2026, 1, 1)}}, unsafe)
    with pytest.raises(CheckpointError, match='allow-list') as info:
        load_checkpoint(Net(), unsafe)
    assert 'datetime' in str(info.value) and str(unsafe) in str(info.value)
    assert info.value.__context__ is None and 'Traceback' not in str(info.value)
    with pytest.raises(IsADirectoryError):
        _load_checkpoint(tmp_path)
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(TypeError, match='expected a dict'):
        load_checkpoint(Net(), tmp_path / 'list.pth')


def test_last_checkpoint(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'x': 1}, path)
    write_last_checkpoint(tmp_path, path)
    assert (tmp_path / 'last_checkpoint').read_text() == str(path)
    assert find_latest_checkpoint(tmp_path) == str(path)
    write_last_checkpoint(tmp_path, 'epoch_1.pth')  # relative: resolved against work_dir
    assert not os.path.exists('epoch_1.pth')
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / 'epoch_1.pth')
    write_last_checkpoint(tmp_path, tmp_path / 'gone.pth')
    with pytest.warns(UserWarning, match='gone.pth'):
        assert find_latest_checkpoint(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth', 'last_checkpoint']
