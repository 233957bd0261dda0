"""Assemble the checkpoint dict of a run and put a loaded one back (the Runner's save / load / resume)."""
from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .checkpoint import get_state_dict, load_state_dict, weights_to_cpu
from .env import get_rng_state, set_rng_state

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Runner

__all__ = ['build_checkpoint', 'apply_weights', 'restore_training_state', 'check_training_checkpoint', 'hook_states',
           'to_plain']


def to_plain(value: Any) -> Any:
    """Convert numpy arrays/scalars to lists/Python numbers and sets to lists, recursively, so that ``value``
    can be saved in a ``weights_only`` checkpoint; other leaves are kept (tensors) or turned into ``str``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_plain(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, (set, frozenset)):
        return [to_plain(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def hook_states(hooks: Sequence[Any]) -> dict[str, dict]:
    """``{name: hook.state_dict()}`` for every hook with a non-empty state; the name is the class name, with
    ``_1``, ``_2``... appended for further hooks of the same class (in registration order)."""
    states: dict[str, dict] = {}
    for name, hook in _named(hooks):
        state = hook.state_dict() if hasattr(hook, 'state_dict') else {}
        if state:
            states[name] = to_plain(state)
    return states


def _named(hooks: Sequence[Any]) -> list[tuple[str, Any]]:
    seen: dict[str, int] = {}
    named = []
    for hook in hooks:
        base = type(hook).__name__
        n = seen.get(base, 0)
        seen[base] = n + 1
        named.append((base if n == 0 else f'{base}_{n}', hook))
    return named


def _dataset_meta(runner: Runner) -> dict:
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        meta = getattr(getattr(getattr(loop, 'dataloader', None), 'dataset', None), 'metainfo', None)
        if meta is not None:
            return to_plain(dict(meta))
    return {}


def build_checkpoint(runner: Runner, save_optimizer: bool = True, save_param_scheduler: bool = True,
                     meta: dict | None = None) -> dict:
    """The checkpoint dict of ``runner`` (layout of docs/architecture.md, plus ``rng_state``).

    ``meta.epoch`` / ``meta.iter`` are the epochs / iterations to resume from (``train_loop.progress()``);
    ``state_dict`` holds CPU copies of the unwrapped model's tensors; ``optimizer`` / ``param_schedulers`` are
    included when asked for and built; ``hooks`` holds the non-empty hook states; ``rng_state`` the Python,
    NumPy and torch generator states. Everything is tensors and plain containers.
    """
    import kiln
    epoch, iteration = runner._train_loop.progress() if runner._train_loop is not None else (0, 0)
    full_meta = dict(to_plain(meta or {}))
    full_meta.update(epoch=epoch, iter=iteration, seed=runner.seed, kiln_version=kiln.__version__,
                     torch_version=str(torch.__version__), cfg=runner.cfg.pretty_text if len(runner.cfg) else '',
                     dataset_meta=_dataset_meta(runner), experiment_name=runner.experiment_name,
                     time=time.strftime('%Y%m%d_%H%M%S', time.localtime()))
    checkpoint: dict[str, Any] = dict(meta=full_meta,
                                      state_dict=weights_to_cpu(get_state_dict(runner.model)))
    if save_optimizer and runner.optim_wrapper is not None:
        checkpoint['optimizer'] = runner.optim_wrapper.state_dict()
    if save_param_scheduler and runner.param_schedulers:
        schedulers = runner.param_schedulers
        if isinstance(schedulers, dict):
            checkpoint['param_schedulers'] = {k: [s.state_dict() for s in v] for k, v in schedulers.items()}
        else:
            checkpoint['param_schedulers'] = [s.state_dict() for s in schedulers]
    checkpoint['message_hub'] = runner.message_hub.state_dict()
    checkpoint['hooks'] = hook_states(runner.hooks)
    checkpoint['rng_state'] = get_rng_state()
    return checkpoint


def apply_weights(model: torch.nn.Module, checkpoint: dict, strict: bool = False,
                  revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),), logger: Any = None,
                  source: str | None = None) -> None:
    """Load ``checkpoint['state_dict']`` (or the whole dict when it is a bare state dict) into the unwrapped
    ``model`` after rewriting its keys with each ``(pattern, replacement)`` of ``revise_keys`` (``re.sub``).

    Raises:
        CheckpointError: ``strict`` and keys or shapes differ, or no key matches (see
            ``kiln.runner.checkpoint.load_state_dict``); the message names ``source`` (the file).
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, repl in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state_dict.items())
    load_state_dict(model, state_dict, strict=strict, logger=logger, source=source)


def restore_training_state(runner: Runner, checkpoint: dict, resume_optimizer: bool = True,
                           resume_param_scheduler: bool = True) -> None:
    """Put a checkpoint's training state back: loop counters, message hub, optimizer, schedulers, hook states
    and RNG states (the weights are loaded separately with ``apply_weights``).

    Raises:
        KeyError: the checkpoint has no ``meta`` (not a training checkpoint), or its scheduler list does not
            match the configured schedulers.
    """
    check_training_checkpoint(checkpoint)
    meta = checkpoint['meta']
    runner.train_loop.load_progress(meta.get('epoch', 0), meta.get('iter', 0))
    if 'message_hub' in checkpoint:
        runner.message_hub.load_state_dict(checkpoint['message_hub'])
    if resume_optimizer and 'optimizer' in checkpoint and runner.optim_wrapper is not None:
        runner.optim_wrapper.load_state_dict(checkpoint['optimizer'])
    if resume_param_scheduler and 'param_schedulers' in checkpoint and runner.param_schedulers:
        _load_schedulers(runner.param_schedulers, checkpoint['param_schedulers'])
    states = checkpoint.get('hooks', {})
    for name, hook in _named(runner.hooks):
        if name in states and hasattr(hook, 'load_state_dict'):
            hook.load_state_dict(states[name])
    if 'rng_state' in checkpoint:
        set_rng_state(checkpoint['rng_state'])


def check_training_checkpoint(checkpoint: Any, source: str | None = None) -> None:
    """Raise unless ``checkpoint`` is a training checkpoint (a dict with ``meta`` and ``state_dict``).

    Raises:
        KeyError: naming ``source`` and the keys found (a bare state dict or a published weights file).
    """
    where = f"'{source}'" if source else 'the checkpoint'
    if not isinstance(checkpoint, dict) or 'meta' not in checkpoint or 'state_dict' not in checkpoint:
        keys = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise KeyError(f'cannot resume from {where}: it has no "meta" / "state_dict" (found {keys}); it is not '
                       'a training checkpoint, use load_from to load its weights')


def _load_schedulers(schedulers: Any, states: Any) -> None:
    if isinstance(schedulers, dict):
        for key, group in schedulers.items():
            _load_schedulers(group, states[key])
        return
    if len(schedulers) != len(states):
        raise KeyError(f'cannot resume the parameter schedulers: the checkpoint has {len(states)}, the config '
                       f'builds {len(schedulers)}')
    for scheduler, state in zip(schedulers, states):
        scheduler.load_state_dict(state)
