"""Checkpoint I/O (MMEngine's ``save_checkpoint`` / ``load_checkpoint`` family).

A checkpoint holds only tensors and plain containers, so it is loaded with
``torch.load(..., weights_only=True)`` (no arbitrary code runs when a file is opened).
Local writes are atomic: temporary file in the same directory, fsync, ``os.replace``.
Paths with a URL scheme go through ``torch.hub`` (``http(s)://``, read only) or fsspec.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from kiln.fileio import atomic_write

__all__ = ['CheckpointError', 'save_checkpoint', 'weights_to_cpu', 'get_state_dict',
           'load_state_dict', 'LoadStateDictResult', 'load_checkpoint', 'find_latest_checkpoint',
           'write_last_checkpoint', 'publish_checkpoint']

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


def weights_to_cpu(state_dict: dict) -> OrderedDict:
    """A new OrderedDict with every tensor moved to CPU (other values kept; the
    ``_metadata`` attribute of module state dicts is carried over)."""
    out = OrderedDict((k, v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in state_dict.items())
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def _unwrap(module: nn.Module) -> nn.Module:
    """Strip DataParallel / DistributedDataParallel (and ``is_model_wrapper``) wrappers and
    ``torch.compile``'s OptimizedModule."""
    while True:
        cls = type(module)
        if (isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel))
                or cls.__name__.endswith('DistributedDataParallel')
                or getattr(cls, 'is_model_wrapper', False)) and isinstance(
                    getattr(module, 'module', None), nn.Module):
            module = module.module
        elif cls.__name__ == 'OptimizedModule' and isinstance(getattr(module, '_orig_mod', None), nn.Module):
            module = module._orig_mod
        else:
            return module


def get_state_dict(module: nn.Module, prefix: str = '', keep_vars: bool = False) -> OrderedDict:
    """``module.state_dict()`` of the unwrapped model: no DDP ``module.`` prefix.

    Tensors are detached (unless ``keep_vars``) and NOT copied: they share storage with
    the model and stay on its device; use :func:`weights_to_cpu` for a CPU copy.
    Only the outermost wrappers are removed.
    """
    return _unwrap(module).state_dict(prefix=prefix, keep_vars=keep_vars)


# ---------------------------------------------------------------------------- loading
class LoadStateDictResult(NamedTuple):
    """What :func:`load_state_dict` could not load."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, ckpt shape, model shape)


def load_state_dict(module: nn.Module, state_dict: dict, strict: bool = False,
                    logger: logging.Logger | None = None, source: str | None = None) -> LoadStateDictResult:
    """Load ``state_dict`` into ``module`` (unwrapped), reporting all differences at once.

    Tensors whose shape differs from the model's are skipped (not loaded, no crash).
    Missing keys, unexpected keys and shape mismatches are gathered into one message.

    Args:
        module: Target model (DDP / DataParallel wrappers are unwrapped).
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
    module = _unwrap(module)
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
    try:
        return torch.load(src, map_location=map_location, weights_only=True)
    except Exception as e:
        err = _load_error(e, name, map_location)
    raise err  # outside the except block: no chained unpickling trace


def _load_checkpoint(filename: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``.

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
        FileNotFoundError, CheckpointError: See :func:`_load_checkpoint`.
        TypeError: The file does not hold a dict.
        CheckpointError: ``strict`` and keys/shapes differ (the message names the file and the first one).
    """
    checkpoint = _load_checkpoint(filename, map_location)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint '{os.fspath(filename)}' holds a {type(checkpoint).__name__}, "
                        'expected a dict (a state dict or a dict with a "state_dict" key)')
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, repl in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state_dict.items())
        if metadata is not None:
            metadata = OrderedDict((re.sub(pattern, repl, k), v) for k, v in metadata.items())
    if metadata is not None:
        state_dict._metadata = metadata  # type: ignore[attr-defined]
    load_state_dict(model, state_dict, strict=strict, logger=logger, source=os.fspath(filename))
    return checkpoint


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


# ---------------------------------------------------------------------------- publishing
_PUBLISHED_META = ('kiln_version', 'torch_version', 'dataset_meta', 'epoch', 'iter', 'seed', 'experiment_name',
                   'cfg')


def publish_checkpoint(in_file: str | os.PathLike, out_file: str | os.PathLike,
                       use_safetensors: bool | None = None) -> str:
    """Write a weights-only release file of a training checkpoint; returns its final path.

    Only the model weights (``state_dict``, CPU) and a short ``meta`` (kiln / torch versions, dataset_meta,
    epoch, iter, seed, experiment name, config text) are kept: optimizer, schedulers, message hub, hook and
    RNG states are dropped. The file name gets the first 8 hex digits of the SHA-256 of its content, as
    MMEngine's ``publish_model``: ``out_file='fcos_bccd.pth'`` -> ``fcos_bccd-1a2b3c4d.pth``. With
    ``use_safetensors`` (default: when ``out_file`` ends in ``.safetensors``) the weights are written in the
    safetensors format (the meta as JSON in its header); ``load_checkpoint`` / ``load_from`` read both.
    ``out_file`` may be an fsspec URL. Writes are atomic for local files.

    Raises:
        FileNotFoundError / CheckpointError: ``in_file`` cannot be read.
        KeyError: ``in_file`` holds no ``state_dict`` and is not a bare state dict of tensors.
    """
    import hashlib

    checkpoint = _load_checkpoint(in_file, 'cpu')
    name = os.fspath(in_file)
    if not isinstance(checkpoint, dict):
        raise KeyError(f"checkpoint '{name}' holds a {type(checkpoint).__name__}, expected a dict")
    state_dict = checkpoint.get('state_dict', checkpoint)
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise KeyError(f"checkpoint '{name}' has no 'state_dict' of tensors (key {bad[0]!r} is a "
                       f'{type(state_dict[bad[0]]).__name__}); keys: {sorted(checkpoint)[:8]}')
    meta = {k: v for k, v in checkpoint.get('meta', {}).items() if k in _PUBLISHED_META}
    out = os.fspath(out_file)
    if use_safetensors is None:
        use_safetensors = out.endswith('.safetensors')
    if use_safetensors:
        import json

        from safetensors.torch import save as st_save
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
        data = st_save(tensors, metadata=dict(format='pt', kiln_meta=json.dumps(meta, default=str)))
        ext = '.safetensors'
    else:
        buf = io.BytesIO()
        torch.save(dict(meta=meta, state_dict=weights_to_cpu(state_dict)), buf)
        data, ext = buf.getvalue(), '.pth'
    stem = out[:-len('.safetensors')] if out.endswith('.safetensors') else os.path.splitext(out)[0]
    final = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}{ext}'
    if _is_url(final):
        _put_url(final, data)
    else:
        with atomic_write(_local(final), 'wb') as f:
            f.write(data)
    return final


# ---------------------------------------------------------------------------- fsspec helpers
def _join_path(directory: str, name: str) -> str:
    return directory.rstrip('/') + '/' + name if _is_url(directory) else os.path.join(_local(directory), name)


def _exists(path: str) -> bool:
    if _is_url(path):
        import fsspec
        fs, p = fsspec.core.url_to_fs(path)
        return fs.isfile(p)
    return os.path.isfile(_local(path))


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
