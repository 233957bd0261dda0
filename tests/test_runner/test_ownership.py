"""The Runner owns the run state: overridable build_* methods take effect, state_dict() / load_state_dict() carry
a run across Runner objects, no other module assigns its private attributes, checkpoints follow the umask."""
import ast
import os
import stat
from pathlib import Path

import torch

from kiln.optim import ConstantLR, OptimWrapper
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

KILN = Path(__file__).resolve().parents[2] / 'kiln'


class CustomRunner(Runner):
    """Builds its optimizer and schedulers its own way, ignoring the configs."""

    calls: list

    def build_optim_wrapper(self, optim_wrapper):
        self.calls = [*getattr(self, 'calls', []), 'optim_wrapper']
        return OptimWrapper(torch.optim.Adam(self.model.parameters(), lr=0.0123))

    def build_param_scheduler(self, scheduler):
        self.calls = [*getattr(self, 'calls', []), 'param_scheduler']
        return [ConstantLR(self.optim_wrapper, factor=0.5, end=1000, by_epoch=False)]


def test_overriding_build_optim_wrapper_and_build_param_scheduler_takes_effect(tmp_path):
    runner = CustomRunner(**runner_kwargs(tmp_path, max_epochs=1, val=False,
                                          param_scheduler=dict(type='MultiStepLR', milestones=[1])))
    runner.train()
    assert runner.calls == ['optim_wrapper', 'param_scheduler']
    assert isinstance(runner.optim_wrapper.optimizer, torch.optim.Adam)  # the config says SGD
    assert isinstance(runner.param_schedulers[0], ConstantLR)  # the config says MultiStepLR
    assert runner.optim_wrapper.optimizer.param_groups[0]['lr'] == 0.0123 * 0.5
    runner.reset_model()  # rebuilding goes through the same methods
    assert runner.calls[2:] == ['optim_wrapper', 'param_scheduler']


def test_every_part_is_built_through_an_overridable_method(tmp_path):
    built = []

    class Recording(Runner):
        pass

    for name in ('build_model', 'wrap_model', 'build_dataloader', 'build_train_loop', 'build_val_loop',
                 'build_evaluator', 'build_optim_wrapper', 'build_param_scheduler', 'build_visualizer',
                 'build_log_processor'):
        def method(self, *args, _name=name, **kwargs):
            built.append(_name)
            return getattr(Runner, _name)(self, *args, **kwargs) if _name != 'build_dataloader' else \
                Runner.build_dataloader(*args, **kwargs)
        setattr(Recording, name, method)
    runner = Recording(**runner_kwargs(tmp_path, max_epochs=1))
    runner.train()
    assert sorted(set(built)) == sorted(['build_model', 'wrap_model', 'build_dataloader', 'build_train_loop',
                                         'build_val_loop', 'build_evaluator', 'build_optim_wrapper',
                                         'build_param_scheduler', 'build_visualizer', 'build_log_processor'])


def test_state_dict_round_trip_between_runners(tmp_path):
    a = Runner(**runner_kwargs(tmp_path / 'a', max_epochs=2, val=False,
                               model=dict(type='CellNet', dropout=0.5)))
    a.train()
    state = a.state_dict()
    assert state['meta']['iter'] == a.iter and {'optimizer', 'message_hub', 'hooks', 'rng_state'} <= set(state)
    b = Runner(**runner_kwargs(tmp_path / 'b', max_epochs=3, val=False, model=dict(type='CellNet', dropout=0.5)))
    torch.manual_seed(123)
    b.load_state_dict(state, resume_optimizer=False, resume_param_scheduler=False)
    assert (b.epoch, b.iter) == (a.epoch, a.iter) == (2, 12)
    assert all(torch.equal(v, a.model.state_dict()[k]) for k, v in b.model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state['rng_state']['torch'])
    assert b.message_hub.state_dict().keys() == a.message_hub.state_dict().keys()


def _private_writes(path: Path) -> list[str]:
    """``<name>._x = ...`` / ``setattr(<name>, '_x', ...)`` where ``<name>`` is ``runner``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for sub in ast.walk(t):
                if (isinstance(sub, ast.Attribute) and sub.attr.startswith('_') and isinstance(sub.value, ast.Name)
                        and sub.value.id == 'runner'):
                    found.append(f'{path.relative_to(KILN.parent)}:{node.lineno} runner.{sub.attr}')
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'setattr' and node.args
                and getattr(node.args[0], 'id', None) == 'runner'):
            found.append(f'{path.relative_to(KILN.parent)}:{node.lineno} setattr(runner, ...)')
    return found


def test_no_module_assigns_the_runners_private_attributes():
    writes = [w for p in sorted(KILN.rglob('*.py')) for w in _private_writes(p)]
    assert writes == []


def test_checkpoints_get_the_umask_permissions(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False))
    runner.train()
    old = os.umask(0o027)
    try:
        runner.save_checkpoint(str(tmp_path), 'a.pth')
        os.umask(0o002)
        runner.save_checkpoint(str(tmp_path), 'b.pth')
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'a.pth').stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / 'b.pth').stat().st_mode) == 0o664  # not mkstemp's private 0o600


def test_moved_names_are_still_importable_from_their_old_homes():
    import kiln.checkpoint as ckpt
    import kiln.dataset as data
    import kiln.model.wrappers as wrappers
    from kiln.hooks.sampler_seed_hook import get_sampler
    from kiln.runner import build_dataloader, load_checkpoint, save_checkpoint
    from kiln.runner.builders import unwrap_model
    from kiln.runner.checkpoint import _load_checkpoint, publish_checkpoint
    assert (load_checkpoint, save_checkpoint, _load_checkpoint, publish_checkpoint) == (
        ckpt.load_checkpoint, ckpt.save_checkpoint, ckpt.read_checkpoint, ckpt.publish_checkpoint)
    assert (build_dataloader, get_sampler, unwrap_model) == (data.build_dataloader, data.get_sampler,
                                                             wrappers.unwrap_model)
