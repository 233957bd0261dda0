"""``kiln publish CHECKPOINT OUT``: weights-only release files with a short SHA-256 in the name."""
import hashlib
import re
from pathlib import Path

import torch

from kiln.cli import main
from kiln.runner import Runner
from kiln.runner.checkpoint import load_checkpoint
from test_runner.toy import CellNet, runner_kwargs


def _trained(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path / 'work', max_epochs=1, val=False))
    runner.train()
    return runner, tmp_path / 'work' / 'epoch_1.pth'


def test_publish_pth_and_safetensors(tmp_path, capsys):
    runner, ckpt = _trained(tmp_path)
    assert main(['publish', str(ckpt), str(tmp_path / 'cellnet.pth')]) == 0
    out = Path(capsys.readouterr().out.strip())
    match = re.fullmatch(r'cellnet-([0-9a-f]{8})\.pth', out.name)
    assert match and hashlib.sha256(out.read_bytes()).hexdigest()[:8] == match.group(1)
    published = torch.load(out, weights_only=True)
    assert sorted(published) == ['meta', 'state_dict']  # no optimizer, message hub, hooks or RNG states
    assert published['meta']['dataset_meta'] == dict(classes=('RBC', 'WBC', 'Platelets'))
    assert out.stat().st_size < ckpt.stat().st_size
    expected = runner.model.state_dict()
    assert all(torch.equal(published['state_dict'][k], v) for k, v in expected.items())

    assert main(['publish', str(ckpt), str(tmp_path / 'cellnet.safetensors')]) == 0
    st = Path(capsys.readouterr().out.strip())
    assert re.fullmatch(r'cellnet-[0-9a-f]{8}\.safetensors', st.name)
    model = CellNet()
    meta = load_checkpoint(model, st, strict=True)['meta']  # load_from accepts the release file
    assert meta['epoch'] == 1 and meta['dataset_meta'] == dict(classes=['RBC', 'WBC', 'Platelets'])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_publish_errors(tmp_path, capsys):
    assert main(['publish', str(tmp_path / 'none.pth'), str(tmp_path / 'x.pth')]) == 2
    assert "none.pth' does not exist" in capsys.readouterr().err
    (tmp_path / 'junk.pth').write_bytes(b'junk')
    assert main(['publish', str(tmp_path / 'junk.pth'), str(tmp_path / 'x.pth')]) == 2
    err = capsys.readouterr().err
    assert "junk.pth' is truncated, corrupt" in err and 'Traceback' not in err
    assert not list(tmp_path.glob('x*'))
