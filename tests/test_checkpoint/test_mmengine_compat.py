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
