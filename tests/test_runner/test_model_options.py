"""cfg.compile and cfg.activation_checkpointing (kiln.runner.model_options) through the Runner."""
import copy
import math

import pytest
import torch
from torch import nn

from kiln.runner import Runner
from kiln.runner.model_options import apply_activation_checkpointing, compile_kwargs
from test_runner.toy import CellNet, load_crops, runner_kwargs


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.layer2(self.layer1(x)).mean((2, 3)))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    ref = Tower()
    ckpt = copy.deepcopy(ref)
    assert apply_activation_checkpointing(ckpt, ['layer1', 'layer2']) == ['layer1', 'layer2']
    assert apply_activation_checkpointing(ckpt, ['layer1']) == []  # already wrapped
    x, y = load_crops('train', 2, 12, 4)
    for model in (ref, ckpt):
        nn.functional.cross_entropy(model(x), y).backward()
    for (name, p_ref), p_ck in zip(ref.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p_ck.grad, p_ref.grad, msg=name)
    # BN running statistics are updated once per forward, as without checkpointing (no double update)
    torch.testing.assert_close(ckpt.layer1[1].running_mean, ref.layer1[1].running_mean)
    assert ckpt.layer1[1].num_batches_tracked.item() == 1
    with pytest.raises(KeyError, match="'layer3' is not a submodule of Tower"):
        apply_activation_checkpointing(ckpt, ['layer3'])


def test_compile_kwargs():
    assert compile_kwargs(None) is None and compile_kwargs(False) is None
    assert compile_kwargs(True) == {'backend': 'inductor'}
    assert compile_kwargs(dict(mode='max-autotune')) == {'mode': 'max-autotune', 'backend': 'inductor'}
    assert compile_kwargs(dict(backend='eager')) == {'backend': 'eager'}
    with pytest.raises(TypeError, match='compile must be'):
        compile_kwargs('yes')


def test_runner_applies_activation_checkpointing_and_compile(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False,
                                    cfg=dict(compile=dict(backend='eager'), activation_checkpointing=['conv'])))
    model = runner.model
    assert model._kiln_compile_kwargs == {'backend': 'eager'}
    assert model._compiled_call_impl is not None  # nn.Module.compile: __call__ goes through torch.compile
    assert model.conv._kiln_checkpointed
    assert list(model.state_dict()) == list(CellNet().state_dict())  # keys unchanged (no _orig_mod.)
    before = model.fc.weight.detach().clone()
    runner.train()
    assert not torch.equal(before, model.fc.weight)
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())


def test_compile_true_uses_the_default_inductor_backend(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, 'compile', lambda fn, *args, **kwargs: seen.append((args, kwargs)) or fn)
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False, cfg=dict(compile=True)))
    runner.model  # noqa: B018
    assert seen == [((), {'backend': 'inductor'})]  # not specified: the inductor path
