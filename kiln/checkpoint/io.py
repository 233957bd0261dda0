"""Checkpoint files: atomic, weights-only, local or fsspec (MMEngine's ``save_checkpoint`` / ``load_checkpoint``
family).

A checkpoint holds only tensors and plain containers, so it is read with ``torch.load(..., weights_only=True)``
(no arbitrary code runs when a file is opened). Local writes are atomic: temporary file in the same directory,
fsync, ``os.replace``; the file then gets the permissions the process umask gives any new file. Paths with a
URL scheme go through ``torch.hub`` (``http(s)://``, read only) or fsspec.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kiln.fileio import atomic_write

__all__ = ['CheckpointError', 'save_checkpoint', 'read_checkpoint', 'find_latest_checkpoint',
           'write_last_checkpoint', 'to_weights_only']

_SCALAR_TYPES = (str, int, float, bool, type(None), bytes, torch.Size, torch.dtype, torch.device)
_KEY_TYPES = (str, int, float, bool, type(None))
_TENSOR_TYPES = (torch.Tensor, nn.Parameter)
_LAST_CHECKPOINT = 'last_checkpoint'


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be loaded safely (corrupt, truncated, or it
    needs unsafe unpickling)."""


# ---------------------------------------------------------------------------- saving
def _join(path: str, key: Any) -> str:
    return f'{path}.{key}' if path else str(key)


def _check_plain(obj: Any, path: str) -> None:
    """Raise TypeError naming the first value ``torch.load(weights_only=True)`` could not load."""
    t = type(obj)
    if t in _SCALAR_TYPES or t in _TENSOR_TYPES:
        return
    if t in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in _KEY_TYPES:
                raise TypeError(f'save_checkpoint: {path or "checkpoint"} has a key {key!r} of type '
                                f'{type(key).__name__}; keys must be str, int, float, bool or None')
            _check_plain(value, _join(path, key))
        return
    if t in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f'{path}[{i}]')
        return
    hint = ' (convert numpy values with .tolist() or float())' if t.__module__.startswith('numpy') else ''
    raise TypeError(f'save_checkpoint: {path or "checkpoint"} is a {t.__module__}.{t.__qualname__}; a '
                    'checkpoint may hold only tensors, dict, list, tuple, str, int, float, bool and None '
                    f'so that torch.load(weights_only=True) can read it{hint}')


def save_checkpoint(checkpoint: dict, filename: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``filename`` atomically.

    The dict is first checked to hold only tensors and plain containers (dict, list,
    tuple, str, int, float, bool, None; also bytes, torch.Size/dtype/device), i.e. what
    ``torch.load(weights_only=True)`` accepts. Local files are written to a temporary file
    in the same directory, fsynced and renamed over ``filename``, so an interrupted or
    failed save never leaves a partial checkpoint (an existing file stays intact). Parent
    directories are created. ``scheme://`` URLs (``s3://``, ``gs://``, ``memory://``...) are written through
    fsspec in a single put of the complete bytes (object stores make an object visible only once complete).

    Args:
        checkpoint: The checkpoint dict (see docs/architecture.md for its keys).
        filename: Destination path or fsspec URL.

    Raises:
        TypeError: ``checkpoint`` is not a dict, or holds another type; the message names
            the key path of the first offending value, e.g. ``meta.dataset_meta.palette[0]``.
    """
    if type(checkpoint) not in (dict, OrderedDict):
        raise TypeError(f'save_checkpoint: checkpoint must be a dict, got {type(checkpoint).__name__}')
    _check_plain(checkpoint, '')
    name = os.fspath(filename)
    if _is_url(name):
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        _put_url(name, buf.getvalue())
        return
    with atomic_write(_local(name), 'wb') as f:
        torch.save(checkpoint, f)


def to_weights_only(value: Any) -> Any:
    """Convert ``value`` recursively into what a ``weights_only`` checkpoint may hold: NumPy arrays / scalars
    become lists / Python numbers, sets become lists, mappings become dicts; tensors and plain values are kept;
    any other object becomes its ``str``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, dict):
        return {k: to_weights_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_weights_only(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, (set, frozenset)):
        return [to_weights_only(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------------- loading
def _is_url(name: str) -> bool:
    return '://' in name and not name.startswith('file://')


def _local(name: str) -> str:
    return name[len('file://'):] if name.startswith('file://') else name


def _load_error(e: Exception, name: str, map_location: Any) -> Exception:
    """Turn a ``torch.load`` failure into one readable error naming the file."""
    msg = str(e)
    first = msg.strip().splitlines()[0][:200] if msg.strip() else type(e).__name__
    unsafe = re.search(r'Unsupported global: GLOBAL (\S+)', msg)
    if unsafe:
        return CheckpointError(
            f"checkpoint '{name}' contains a Python object ({unsafe.group(1)}) that needs unsafe "
            'unpickling; kiln loads checkpoints with torch.load(weights_only=True) and only '
            'accepts tensors and plain containers. If you trust the file, convert it once with '
            'torch.load(path, weights_only=False), replace the objects by plain data and save it again.')
    if isinstance(e, RuntimeError) and re.search(r'CUDA|device', msg) and 'zip' not in msg:
        return RuntimeError(f"checkpoint '{name}' cannot be loaded with map_location="
                            f'{map_location!r}: {first}')
    return CheckpointError(f"checkpoint '{name}' is truncated, corrupt or not a PyTorch "
                           f'checkpoint ({type(e).__name__}: {first})')


def _torch_load(src: Any, name: str, map_location: Any) -> Any:
    """``torch.load(weights_only=True)``; a file that references Python objects (an MMEngine-saved checkpoint)
    is read once more through :mod:`kiln.checkpoint.mmengine_compat`'s allow-list, never unpickled freely."""
    try:
        return torch.load(src, map_location=map_location, weights_only=True)
    except Exception as e:
        if 'Unsupported global' not in str(e):
            err = _load_error(e, name, map_location)
        else:
            err = None
    if err is None:
        from .mmengine_compat import load_mmengine_checkpoint
        return load_mmengine_checkpoint(src, name, map_location)
    raise err  # outside the except block: no chained unpickling trace


def read_checkpoint(filename: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint file with ``torch.load(..., weights_only=True)`` (a ``.safetensors`` file gives
    ``dict(meta=..., state_dict=...)``).

    Args:
        filename: Local path (or ``file://``), ``http(s)://`` URL (cached by torch.hub) or
            another fsspec URL.
        map_location: As for ``torch.load``.

    Returns:
        The loaded object (normally a dict).

    Raises:
        FileNotFoundError: The local file does not exist (the path is named).
        IsADirectoryError: The path is a directory.
        CheckpointError: The file is truncated / corrupt, or needs unsafe unpickling.
        RuntimeError: The tensors cannot be mapped to ``map_location``.
    """
    name = os.fspath(filename)
    if name.startswith(('http://', 'https://')):
        try:
            return torch.hub.load_state_dict_from_url(name, map_location=map_location,
                                                      progress=False, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError) as e:
            err = _load_error(e, name, map_location)
        raise err
    if _is_url(name):
        import fsspec
        with fsspec.open(name, 'rb') as f:
            data = f.read()
        if name.endswith('.safetensors'):
            return _safetensors_load(data, name, map_location)
        return _torch_load(io.BytesIO(data), name, map_location)
    path = _local(name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file '{path}' does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint path '{path}' is a directory, expected a file")
    if path.endswith('.safetensors'):
        return _safetensors_load(Path(path).read_bytes(), name, map_location)
    return _torch_load(path, name, map_location)


def _safetensors_load(data: bytes, name: str, map_location: Any) -> dict:
    """``dict(state_dict=..., meta=...)`` from the bytes of a ``.safetensors`` file (see publish_checkpoint)."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load as st_load
    try:
        state_dict = st_load(data)
        n = int.from_bytes(data[:8], 'little')
        header = json.loads(data[8:8 + n]).get('__metadata__', {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        err = CheckpointError(f"checkpoint '{name}' is truncated, corrupt or not a safetensors file "
                              f'({type(e).__name__}: {first})')
    else:
        if map_location not in (None, 'cpu'):
            state_dict = {k: v.to(map_location) for k, v in state_dict.items()}
        meta = json.loads(header['kiln_meta']) if 'kiln_meta' in header else {}
        return dict(meta=meta, state_dict=OrderedDict(state_dict))
    raise err


# ---------------------------------------------------------------------------- last_checkpoint
def find_latest_checkpoint(work_dir: str | os.PathLike) -> str | None:
    """The checkpoint path recorded in ``<work_dir>/last_checkpoint``, or None.

    ``work_dir`` may be a local path or an fsspec URL (``memory://``, ``s3://``...). A relative recorded path
    that does not exist from the current directory is tried relative to ``work_dir``. Returns None (with a
    warning) when the recorded file is missing, and None when there is no ``last_checkpoint`` file or it is
    empty.
    """
    work_dir = os.fspath(work_dir)
    record = _join_path(work_dir, _LAST_CHECKPOINT)
    if not _exists(record):
        return None
    path = _read_text(record).strip()
    if not path:
        return None
    if _exists(path):
        return path
    candidate = _join_path(work_dir, path)
    if not _is_url(path) and not os.path.isabs(path) and _exists(candidate):
        return candidate
    warnings.warn(f"{record} names '{path}', which does not exist; no checkpoint to resume from",
                  stacklevel=2)
    return None


def write_last_checkpoint(work_dir: str | os.PathLike, path: str | os.PathLike) -> None:
    """Atomically record ``path`` in ``<work_dir>/last_checkpoint`` (call it only after the
    checkpoint itself is saved). ``work_dir`` may be an fsspec URL (single put)."""
    work_dir = os.fspath(work_dir)
    if _is_url(work_dir):
        _put_url(_join_path(work_dir, _LAST_CHECKPOINT), os.fspath(path).encode('utf-8'))
        return
    with atomic_write(Path(_local(work_dir)) / _LAST_CHECKPOINT, 'w') as f:
        f.write(os.fspath(path))


# ---------------------------------------------------------------------------- fsspec helpers
def _join_path(directory: str, name: str) -> str:
    return directory.rstrip('/') + '/' + name if _is_url(directory) else os.path.join(_local(directory), name)


def _exists(path: str) -> bool:
    """A checkpoint file, or a sharded checkpoint directory (``kiln.checkpoint.sharded``), exists at ``path``."""
    if _is_url(path):
        import fsspec
        fs, p = fsspec.core.url_to_fs(path)
        return fs.isfile(p)
    local = _local(path)
    return os.path.isfile(local) or os.path.isfile(os.path.join(local, '.metadata'))


def _read_text(path: str) -> str:
    if _is_url(path):
        import fsspec
        with fsspec.open(path, 'r', encoding='utf-8') as f:
            return f.read()
    return Path(_local(path)).read_text(encoding='utf-8')


def _put_url(url: str, data: bytes) -> None:
    """Write ``data`` to an fsspec URL in one put (parent "directories" created where the store has them)."""
    import fsspec
    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit('/', 1)[0] if '/' in path else ''
    if parent:
        try:
            fs.makedirs(parent, exist_ok=True)
        except (OSError, NotImplementedError):  # object stores have no directories
            pass
    fs.pipe_file(path, data)
