"""``kiln complexity``: parameter and FLOP totals of the demo detectors."""
import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.config import Config
from kiln.registry import MODELS, init_default_scope

CONFIGS = Path(__file__).resolve().parents[3] / 'configs'


@pytest.mark.parametrize('config, ratio', [('fcos/fcos_r18-slim_fpn_bccd.py', (3.0, 4.2)),
                                           ('faster_rcnn/faster-rcnn_r18-slim_fpn_bccd.py', (1.5, 3.0))])
def test_complexity_totals(config, ratio, capsys):
    """The JSON totals: parameters equal the model's; FLOPs grow about 4x when both sides double for FCOS (all
    convolutions), less for Faster R-CNN (its RoI head costs the same for its 500 proposals at any size)."""
    path = str(CONFIGS / config)
    assert main(['complexity', path, '--shape', '128', '160', '--json']) == 0
    small = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(['complexity', path, '--shape', '256', '320', '--json']) == 0
    big = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    init_default_scope('kiln.det')
    model = MODELS.build(Config.fromfile(path).model)
    assert small['params'] == big['params'] == sum(p.numel() for p in model.parameters())
    assert small['shape'] == [128, 160] and small['flops'] > 0
    assert ratio[0] < big['flops'] / small['flops'] <= ratio[1]


def test_complexity_table_default_shape(capsys):
    """Without --shape the test pipeline's Resize scale is used (BCCD demo: 384 x 512); the table names the
    backbone and the head."""
    assert main(['complexity', str(CONFIGS / 'fcos' / 'fcos_r18-slim_fpn_bccd.py')]) == 0
    out = capsys.readouterr().out
    assert 'input 1 x 3 x 384 x 512' in out and 'backbone' in out and 'bbox_head' in out
    assert 'FLOPs (multiply-adds):' in out
