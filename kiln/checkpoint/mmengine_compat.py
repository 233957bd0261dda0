"""Read checkpoints saved by MMEngine's Runner without executing pickled code.

MMEngine (0.x) checkpoints pickle a few Python objects beside the tensors: ``HistoryBuffer`` objects in
``message_hub.log_scalars`` (with NumPy arrays and a dict of unbound methods), NumPy scalars and dtypes in the
runtime info, ``collections.Counter`` milestones in ``param_schedulers``, and sometimes ``ConfigDict`` in
``meta``. Since torch 2.6, ``torch.load`` refuses them by default. kiln reads such files with torch's own
weights-only unpickler plus a fixed allow-list (:data:`MMENGINE_SAFE_GLOBALS`): each allowed name maps to a
plain stand-in (never to MMEngine's class, which need not be installed), so loading builds data, never runs
code. Anything outside the list still fails, and :func:`load_mmengine_checkpoint` names the class.

:func:`convert_mmengine_checkpoint` then turns the result into kiln's checkpoint layout (plain containers only,
see ``docs/checkpoints.md``): ``meta``, ``state_dict``, ``optimizer`` and ``param_schedulers`` keep their MMEngine
form (kiln's optimizer wrappers and schedulers use the same state keys), ``message_hub`` becomes kiln's
``dict(log_scalars={key: dict(log_history, count_history, max_length)}, runtime_info, resumed_keys)``.

Reference: MMEngine 0.10.7 ``Runner.save_checkpoint`` / ``MessageHub.state_dict`` / ``HistoryBuffer`` (the
layout read here, learnt from files it wrote: ``tools/make_mmengine_checkpoint.py``); PyTorch
``torch.serialization.safe_globals``.
"""
from __future__ import annotations

import codecs
import collections
import re
from typing import Any

import numpy as np
import torch

from .io import CheckpointError

__all__ = ['MMENGINE_SAFE_GLOBALS', 'UnsafeCheckpointError', 'convert_mmengine_checkpoint', 'is_mmengine_checkpoint',
           'load_mmengine_checkpoint']


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint holds a pickled Python object outside kiln's allow-list (the message names it)."""


class _HistoryBuffer:
    """Stand-in for ``mmengine.logging.history_buffer.HistoryBuffer``: receives its pickled ``__dict__``
    (``_log_history``, ``_count_history``, ``max_length``, ``statistics_methods``)."""


class _ConfigDict(dict):
    """Stand-in for ``mmengine.config.config.ConfigDict`` (and addict's ``Dict``): a plain dict subclass."""

    def __setstate__(self, state: Any) -> None:  # addict pickles its items as the state
        if isinstance(state, dict):
            self.update(state)


def _method_name(owner: Any, name: str) -> str:
    """Stand-in for ``getattr`` as MMEngine's pickles use it: only ``getattr(HistoryBuffer, 'mean')`` and the
    like (the buffer's statistics methods) are allowed; the result is the method's name.

    Raises:
        UnsafeCheckpointError: any other ``getattr`` in the pickle.
    """
    if (owner is _HistoryBuffer or isinstance(owner, _HistoryBuffer)) and isinstance(name, str) \
            and re.fullmatch(r'[a-z_]+', name):
        return name
    raise UnsafeCheckpointError(f'checkpoint calls getattr({type(owner).__name__}, {name!r}), which is not on '
                                "kiln's allow-list")


def _numpy_globals() -> list:
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtype_types = sorted({type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDG'} | {type(np.dtype('U1'))},
                         key=lambda t: t.__name__)
    names = []
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        names += [(_reconstruct, f'{mod}._reconstruct'), (scalar, f'{mod}.scalar')]
    return names + [np.ndarray, np.dtype, codecs.encode, *dtype_types]


#: The globals (``module.name``) a kiln-loadable MMEngine checkpoint may reference, each with its stand-in.
MMENGINE_SAFE_GLOBALS: list = [
    (_HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
    (_ConfigDict, 'mmengine.config.config.ConfigDict'),
    (_ConfigDict, 'addict.addict.Dict'),
    (_method_name, 'builtins.getattr'),
    collections.Counter,
    collections.OrderedDict,
    collections.defaultdict,
    *_numpy_globals(),
]


def _plain(obj: Any) -> Any:
    """NumPy scalars/arrays -> Python numbers/lists, Counter/OrderedDict/ConfigDict -> dict, tuples kept."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.dtype):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, _HistoryBuffer):
        return _history(obj)
    return obj


def _history(buf: _HistoryBuffer) -> dict:
    state = vars(buf)
    values = np.asarray(state.get('_log_history', []), dtype=np.float64).tolist()
    counts = np.asarray(state.get('_count_history', []), dtype=np.float64).tolist()
    return dict(log_history=values, count_history=counts, max_length=int(state.get('max_length', 1000000)))


def is_mmengine_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint dict was written by MMEngine (``meta['mmengine_version']`` or HistoryBuffers)."""
    if not isinstance(checkpoint, dict):
        return False
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and 'mmengine_version' in meta:
        return True
    hub = checkpoint.get('message_hub')
    scalars = hub.get('log_scalars', {}) if isinstance(hub, dict) else {}
    return any(isinstance(v, _HistoryBuffer) for v in scalars.values())


def convert_mmengine_checkpoint(checkpoint: dict) -> dict:
    """Turn an MMEngine checkpoint (as loaded with the allow-list) into kiln's plain layout.

    Args:
        checkpoint: dict with some of ``meta``, ``state_dict``, ``optimizer``, ``param_schedulers``,
            ``message_hub``, ``ema_state_dict`` (MMEngine's keys).

    Returns:
        A new dict with the same keys, holding only tensors and plain containers: NumPy values become Python
        numbers/lists, ``Counter`` milestones plain ``{step: count}`` dicts, ``HistoryBuffer`` s
        ``dict(log_history, count_history, max_length)``; ``meta['mmengine_version']`` is kept and
        ``meta['converted_from'] = 'mmengine'`` added. Tensors are not copied.
    """
    out = {}
    for key, value in checkpoint.items():
        if key in ('state_dict', 'ema_state_dict'):
            out[key] = value  # tensors (an OrderedDict): keep as-is, with its _metadata
        elif key == 'message_hub' and isinstance(value, dict):
            hub = _plain(value)
            hub.setdefault('log_scalars', {})
            hub.setdefault('runtime_info', {})
            hub['resumed_keys'] = {k: bool(v) for k, v in hub.get('resumed_keys', {}).items()}
            out[key] = hub
        else:
            out[key] = _plain(value)
    meta = out.setdefault('meta', {})
    if isinstance(meta, dict):
        meta['converted_from'] = 'mmengine'
    return out


def load_mmengine_checkpoint(src: Any, name: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(src, weights_only=True)`` with :data:`MMENGINE_SAFE_GLOBALS` allowed, then converted with
    :func:`convert_mmengine_checkpoint` when it is an MMEngine checkpoint.

    Args:
        src: a path or a binary file object (rewound before reading).
        name: the file's name for messages.
        map_location: as for ``torch.load``.

    Raises:
        UnsafeCheckpointError: the file references a global outside the allow-list; the message names it and
            the file.
    """
    if hasattr(src, 'seek'):
        src.seek(0)
    message = None
    try:
        with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
            checkpoint = torch.load(src, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as e:
        message = f"checkpoint '{name}': {e}"
    except Exception as e:  # torch wraps errors raised inside the unpickler
        unsafe = re.search(r'Unsupported global: GLOBAL (\S+)', str(e))
        inner = re.search(r'UnsafeCheckpointError: (.*)', str(e))
        if not (unsafe or inner):
            raise
        what = unsafe.group(1) if unsafe else inner.group(1)
        message = (f"checkpoint '{name}' contains a pickled Python object ({what}) that is not on kiln's "
                   'allow-list (tensors, plain containers, NumPy values and the MMEngine objects listed in '
                   'kiln.checkpoint.mmengine_compat.MMENGINE_SAFE_GLOBALS); kiln never unpickles other objects. '
                   'If you trust the file, load it once with torch.load(path, weights_only=False), replace the '
                   'object by plain data and save it again.')
    if message is not None:
        raise UnsafeCheckpointError(message)  # outside the except blocks: no chained unpickling trace
    if is_mmengine_checkpoint(checkpoint):
        return convert_mmengine_checkpoint(checkpoint)
    if isinstance(checkpoint, dict):  # other files: NumPy values made plain, tensors untouched
        return {k: v if k in ('state_dict', 'ema_state_dict') else _plain(v) for k, v in checkpoint.items()}
    return _plain(checkpoint)
