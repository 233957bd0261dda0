"""Pure helpers for the parts of a checkpoint that ``Runner.state_dict()`` / ``Runner.load_state_dict()`` assemble
and restore: hook states, scheduler states, weights with revised keys, the training-checkpoint check.

None of them touches the Runner: the Runner owns its state and assigns it itself (see docs/architecture.md).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from kiln.checkpoint import load_state_dict, revise_state_dict, to_weights_only

__all__ = ['hook_states', 'load_hook_states', 'scheduler_states', 'load_scheduler_states', 'apply_weights',
           'check_training_checkpoint', 'dataset_meta']


def _named(hooks: Sequence[Any]) -> list[tuple[str, Any]]:
    seen: dict[str, int] = {}
    named = []
    for hook in hooks:
        base = type(hook).__name__
        n = seen.get(base, 0)
        seen[base] = n + 1
        named.append((base if n == 0 else f'{base}_{n}', hook))
    return named


def hook_states(hooks: Sequence[Any]) -> dict[str, dict]:
    """``{name: hook.state_dict()}`` for every hook with a non-empty state; the name is the class name, with
    ``_1``, ``_2``... appended for further hooks of the same class (in registration order)."""
    states: dict[str, dict] = {}
    for name, hook in _named(hooks):
        state = hook.state_dict() if hasattr(hook, 'state_dict') else {}
        if state:
            states[name] = to_weights_only(state)
    return states


def load_hook_states(hooks: Sequence[Any], states: dict[str, dict]) -> None:
    """Give every hook its entry of ``states`` (names as :func:`hook_states`), through its ``load_state_dict``."""
    for name, hook in _named(hooks):
        if name in states and hasattr(hook, 'load_state_dict'):
            hook.load_state_dict(states[name])


def scheduler_states(schedulers: Any) -> Any:
    """``[s.state_dict(), ...]`` (a dict of such lists for an ``OptimWrapperDict``'s schedulers)."""
    if isinstance(schedulers, dict):
        return {k: [s.state_dict() for s in v] for k, v in schedulers.items()}
    return [s.state_dict() for s in schedulers]


def load_scheduler_states(schedulers: Any, states: Any) -> None:
    """Load what :func:`scheduler_states` returned into the same list (or dict of lists) of schedulers.

    Raises:
        KeyError: the numbers of schedulers differ (the message gives both).
    """
    if isinstance(schedulers, dict):
        for key, group in schedulers.items():
            load_scheduler_states(group, states[key])
        return
    if len(schedulers) != len(states):
        raise KeyError(f'cannot resume the parameter schedulers: the checkpoint has {len(states)}, the config '
                       f'builds {len(schedulers)}')
    for scheduler, state in zip(schedulers, states):
        scheduler.load_state_dict(state)


def apply_weights(model: torch.nn.Module, checkpoint: dict, strict: bool = False,
                  revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),), logger: Any = None,
                  source: str | None = None) -> None:
    """Load ``checkpoint['state_dict']`` (or the whole dict when it is a bare state dict) into the unwrapped
    ``model`` after rewriting its keys with each ``(pattern, replacement)`` of ``revise_keys`` (``re.sub``).

    Raises:
        CheckpointError: ``strict`` and keys or shapes differ, or no key matches (see
            ``kiln.checkpoint.load_state_dict``); the message names ``source`` (the file).
    """
    state_dict = revise_state_dict(checkpoint.get('state_dict', checkpoint), revise_keys)
    load_state_dict(model, state_dict, strict=strict, logger=logger, source=source)


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


def dataset_meta(loops: Sequence[Any]) -> dict:
    """The ``metainfo`` of the first of ``loops`` whose dataloader's dataset has one (plain data), or ``{}``."""
    for loop in loops:
        meta = getattr(getattr(getattr(loop, 'dataloader', None), 'dataset', None), 'metainfo', None)
        if meta is not None:
            return to_weights_only(dict(meta))
    return {}
