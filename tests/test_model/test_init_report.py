"""The per-parameter init report of BaseModule.init_weights, Pretrained prefix / revise_keys, runner logging."""
import logging

import pytest
import torch
from torch import nn

from kiln.model import BaseModule


class Head(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.cls = nn.Linear(4, 3)


class Custom(nn.Module):
    """Not a BaseModule: its own init_weights writes through ``.data`` (no version bump)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def init_weights(self):
        self.w.data.fill_(7.0)


class Net(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 4)
        self.head = Head(init_cfg=dict(type='Normal', std=0.01, layer='Linear'))
        self.custom = Custom()


def test_report_names_the_initializer_of_every_parameter():
    net = Net(init_cfg=[dict(type='Kaiming', layer='Conv2d'), dict(type='Constant', val=1, layer='_BatchNorm'),
                        dict(type='Xavier', layer='Linear', override=dict(type='Uniform', name='fc', a=-1, b=1))])
    net.init_weights()
    report = net.init_report
    assert list(report) == [n for n, _ in net.named_parameters()]
    assert report['conv.weight'].startswith('KaimingInit(') and "mode='fan_out'" in report['conv.weight']
    assert report['bn.weight'].startswith('ConstantInit(') and report['bn.bias'].startswith('ConstantInit(')
    # the override ran after the Xavier rule (last writer wins)
    assert report['fc.weight'].startswith('UniformInit(') and 'a=-1' in report['fc.weight']
    # the child's own init_cfg runs after the parent's Linear rule, and names its own initializer
    assert report['head.cls.weight'].startswith('NormalInit(') and 'std=0.01' in report['head.cls.weight']
    assert report['custom.w'] == 'Custom.init_weights()'
    assert torch.all(net.custom.w == 7)
    text = net.format_init_report()
    assert 'conv.weight - (4, 3, 3, 3): KaimingInit(' in text


def test_untouched_parameters_are_reported():
    net = Net(init_cfg=dict(type='Kaiming', layer='Conv2d'))
    net.custom.init_weights = lambda: None
    net.init_weights()
    report = net.init_report
    assert report['fc.weight'] == 'not initialised by init_cfg'
    assert report['bn.bias'] == 'not initialised by init_cfg'
    assert report['custom.w'] == 'not initialised by init_cfg'
    assert Net().init_report is None and Net().format_init_report() == ''


def test_pretrained_prefix_and_revise_keys_reported(tmp_path):
    src = nn.Module()
    src.backbone = nn.Module()
    src.backbone.stem = nn.Conv2d(3, 4, 3)
    torch.nn.init.constant_(src.backbone.stem.weight, 0.5)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
    net = Net(init_cfg=[dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Pretrained', checkpoint=str(path), prefix='backbone.',
                             revise_keys=[(r'^stem\.', 'conv.')])])
    with pytest.warns(UserWarning, match='missing keys'):
        net.init_weights()  # partial checkpoint
    assert torch.all(net.conv.weight == 0.5)
    assert net.init_report['conv.weight'].startswith('PretrainedInit(')
    assert net.init_report['fc.weight'] == 'not initialised by init_cfg'


def test_runner_logs_the_report_at_debug(tmp_path):

    from kiln.runner import Runner
    toy = _toy()
    kwargs = toy.runner_kwargs(tmp_path, max_epochs=1, val=False, log_level='DEBUG')
    kwargs['model'] = dict(type='CellNet', init_cfg=dict(type='Constant', val=0.0, layer='Linear'))
    kwargs['train_dataloader'] = toy.loader_cfg('train', n_images=1, max_per_class=2)
    runner = Runner(**kwargs)
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    runner.logger.addHandler(handler)
    runner.train()
    text = '\n'.join(r.getMessage() for r in records if r.levelno == logging.DEBUG)
    assert 'Parameter initialisation:' in text
    assert 'fc.weight - (3, 8): ConstantInit(' in text
    assert 'conv.weight - (8, 3, 3, 3): not initialised by init_cfg' in text


def _toy():
    """tests/test_runner/toy.py under the one module name every test uses (``test_runner.toy``): loading it
    under another name would re-register its classes (force=True) and break other tests' isinstance checks."""
    import sys
    from pathlib import Path
    tests_dir = str(Path(__file__).resolve().parents[1])
    if tests_dir not in sys.path:
        sys.path.append(tests_dir)
    from test_runner import toy
    return toy
