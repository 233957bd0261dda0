"""Model state dicts: CPU copies, the unwrapped model's state dict, and loading that reports every difference
(MMEngine's ``weights_to_cpu`` / ``get_state_dict`` / ``load_state_dict`` / ``load_checkpoint``)."""
from __future__ import annotations

import logging
import os
import re
import warnings
from collections import OrderedDict
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from kiln.model.wrappers.utils import unwrap_model

from .io import CheckpointError, read_checkpoint

__all__ = ['weights_to_cpu', 'get_state_dict', 'LoadStateDictResult', 'load_state_dict', 'revise_state_dict',
           'load_checkpoint']


def weights_to_cpu(state_dict: dict) -> OrderedDict:
    """A new OrderedDict with every tensor moved to CPU (other values kept; the
    ``_metadata`` attribute of module state dicts is carried over)."""
    out = OrderedDict((k, v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in state_dict.items())
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def get_state_dict(module: nn.Module, prefix: str = '', keep_vars: bool = False) -> OrderedDict:
    """``module.state_dict()`` of the unwrapped model: no DDP ``module.`` prefix (FSDP: the gathered full state).

    Tensors are detached (unless ``keep_vars``) and NOT copied: they share storage with
    the model and stay on its device; use :func:`weights_to_cpu` for a CPU copy.
    Only the outermost wrappers are removed.
    """
    return unwrap_model(module, keep_sharded=True).state_dict(prefix=prefix, keep_vars=keep_vars)


class LoadStateDictResult(NamedTuple):
    """What :func:`load_state_dict` could not load."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, ckpt shape, model shape)


def _unwrap_for_loading(module: nn.Module) -> nn.Module:
    """The model that weights load into: ``module`` without its outer wrappers (see
    :func:`~kiln.model.wrappers.unwrap_model`, FSDP kept) nor test-time-augmentation wrappers
    (:class:`kiln.model.BaseTTAModel`, whose ``.module`` is the model), in any nesting, so that a plain model's
    checkpoint loads into its TTA model (MMEngine's ``load_state_dict`` unwraps TTA models the same way)."""
    from kiln.model.base_tta_model import BaseTTAModel
    module = unwrap_model(module, keep_sharded=True)
    while isinstance(module, BaseTTAModel):
        module = unwrap_model(module.module, keep_sharded=True)
    return module


def load_state_dict(module: nn.Module, state_dict: dict, strict: bool = False,
                    logger: logging.Logger | None = None, source: str | None = None) -> LoadStateDictResult:
    """Load ``state_dict`` into ``module`` (unwrapped), reporting all differences at once.

    Tensors whose shape differs from the model's are skipped (not loaded, no crash).
    Missing keys, unexpected keys and shape mismatches are gathered into one message.

    Args:
        module: Target model (DDP / DataParallel wrappers and TTA models (``BaseTTAModel``) are unwrapped).
        state_dict: ``{name: tensor}``.
        strict: Raise instead of warning when anything differs.
        logger: Where the warning goes (``logger.warning``); ``warnings.warn`` when None.
        source: Name of the file the weights come from; named in the message.

    Returns:
        The missing, unexpected and shape-mismatched keys.

    Raises:
        CheckpointError (a RuntimeError): ``strict`` and the keys/shapes differ (after loading what matches);
            the first line names ``source`` and the first problem, the next lines list all of them. Also
            without ``strict`` when not a single key matches (a checkpoint of another model).
    """
    module = _unwrap_for_loading(module)
    own = module.state_dict(keep_vars=True)
    filtered: OrderedDict = OrderedDict()
    mismatched = []
    for key, value in state_dict.items():
        target = own.get(key)
        if (isinstance(value, torch.Tensor) and isinstance(target, torch.Tensor)
                and not nn.parameter.is_lazy(target) and value.shape != target.shape):
            mismatched.append((key, tuple(value.shape), tuple(target.shape)))
        else:
            filtered[key] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        filtered._metadata = metadata  # type: ignore[attr-defined]
    if state_dict and own and not strict and not any(k in own for k in filtered):
        where = f"checkpoint '{source}'" if source else 'the state dict'
        raise CheckpointError(f'{where} does not belong to this model: none of its {len(state_dict)} keys '
                              f'is a key of the model (first checkpoint key {next(iter(state_dict))!r}, first '
                              f'model key {next(iter(own))!r}); pass revise_keys to rename them')
    incompatible = module.load_state_dict(filtered, strict=False)
    skipped = {k for k, _, _ in mismatched}
    result = LoadStateDictResult([k for k in incompatible.missing_keys if k not in skipped],
                                 list(incompatible.unexpected_keys), mismatched)
    lines = [f'size mismatch for {k}: copying a param with shape {list(src)} from checkpoint, '
             f'the shape in current model is {list(dst)}.' for k, src, dst in mismatched]
    if result.unexpected_keys:
        lines.append('unexpected key in source state_dict: ' + ', '.join(result.unexpected_keys))
    if result.missing_keys:
        lines.append('missing keys in source state_dict: ' + ', '.join(result.missing_keys))
    if lines:
        where = f"checkpoint '{source}'" if source else 'The loaded state dict'
        n = len(mismatched) + len(result.unexpected_keys) + len(result.missing_keys)
        head = (f'{where} does not match the model exactly ({n} differing keys); first: {lines[0][:300]}'
                if source else 'The model and loaded state dict do not match exactly')
        msg = '\n'.join([head, *lines])
        if strict:
            raise CheckpointError(msg)
        if logger is not None:
            logger.warning(msg)
        else:
            warnings.warn(msg, stacklevel=2)
    return result


def revise_state_dict(state_dict: dict, revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),)) -> dict:
    """A copy of ``state_dict`` whose keys are rewritten with each ``(pattern, replacement)`` (``re.sub``), in
    order; a module state dict's ``_metadata`` is rewritten alike."""
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, repl in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state_dict.items())
        if metadata is not None:
            metadata = OrderedDict((re.sub(pattern, repl, k), v) for k, v in metadata.items())
    if metadata is not None:
        state_dict._metadata = metadata  # type: ignore[attr-defined]
    return state_dict


def load_checkpoint(model: nn.Module, filename: str | os.PathLike, map_location: Any = 'cpu',
                    strict: bool = False,
                    revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),),
                    logger: logging.Logger | None = None) -> dict:
    """Load a checkpoint file into ``model``.

    The weights are ``checkpoint['state_dict']`` when present, else the whole dict (a
    bare state dict). Each ``(pattern, replacement)`` of ``revise_keys`` is applied to the
    keys with ``re.sub`` (default: drop a DDP ``module.`` prefix). Mismatches are handled
    by :func:`load_state_dict`.

    Returns:
        The whole checkpoint dict (meta, optimizer... for resuming).

    Raises:
        FileNotFoundError, CheckpointError: See :func:`kiln.checkpoint.read_checkpoint`.
        TypeError: The file does not hold a dict.
        CheckpointError: ``strict`` and keys/shapes differ (the message names the file and the first one).
    """
    checkpoint = read_checkpoint(filename, map_location)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint '{os.fspath(filename)}' holds a {type(checkpoint).__name__}, "
                        'expected a dict (a state dict or a dict with a "state_dict" key)')
    state_dict = revise_state_dict(checkpoint.get('state_dict', checkpoint), revise_keys)
    load_state_dict(model, state_dict, strict=strict, logger=logger, source=os.fspath(filename))
    return checkpoint


