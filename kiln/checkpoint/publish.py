"""Release files of training checkpoints (MMEngine's ``publish_model``; ``kiln publish`` and
``CheckpointHook(published_keys=...)`` both call :func:`publish_checkpoint`)."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from typing import Sequence

import torch

from kiln.fileio import atomic_write

from .io import _is_url, _local, _put_url, read_checkpoint
from .state_dict import weights_to_cpu

__all__ = ['publish_checkpoint']

_PUBLISHED_META = ('kiln_version', 'torch_version', 'dataset_meta', 'epoch', 'iter', 'seed', 'experiment_name',
                   'cfg')


def publish_checkpoint(in_file: str | os.PathLike, out_file: str | os.PathLike | None = None,
                       use_safetensors: bool | None = None, keys: Sequence[str] | None = None,
                       logger: logging.Logger | None = None) -> str:
    """Write a release copy of a training checkpoint; returns its final path.

    By default only the model weights (``state_dict``, CPU) and a short ``meta`` (kiln / torch versions,
    dataset_meta, epoch, iter, seed, experiment name, config text) are kept: optimizer, schedulers, message hub,
    hook and RNG states are dropped. With ``keys`` (``CheckpointHook(published_keys=[...])``) exactly those
    top-level entries of the checkpoint are kept, as they are (missing ones are skipped). The file name gets the
    first 8 hex digits of the SHA-256 of its content, as MMEngine's ``publish_model``:
    ``out_file='fcos_bccd.pth'`` -> ``fcos_bccd-1a2b3c4d.pth`` (default ``out_file``: ``in_file``, i.e. next to
    it). With ``use_safetensors`` (default: when ``out_file`` ends in ``.safetensors``) the weights are written
    in the safetensors format (the meta as JSON in its header); ``load_checkpoint`` / ``load_from`` read both.
    ``in_file`` / ``out_file`` may be fsspec URLs; local writes are atomic. Call it on the main process only.

    Raises:
        FileNotFoundError / CheckpointError: ``in_file`` cannot be read.
        KeyError: ``in_file`` holds no ``state_dict`` and is not a bare state dict of tensors (default keys).
        ValueError: ``keys`` together with ``use_safetensors`` (safetensors holds weights and meta only).
    """
    checkpoint = read_checkpoint(in_file, 'cpu')
    name = os.fspath(in_file)
    if not isinstance(checkpoint, dict):
        raise KeyError(f"checkpoint '{name}' holds a {type(checkpoint).__name__}, expected a dict")
    out = os.fspath(out_file if out_file is not None else in_file)
    if use_safetensors is None:
        use_safetensors = out.endswith('.safetensors')
    if keys is not None:
        if use_safetensors:
            raise ValueError('publish_checkpoint: keys= selects checkpoint entries for a .pth release; a '
                             'safetensors release holds the weights and the meta only')
        published = {k: checkpoint[k] for k in keys if k in checkpoint}
    else:
        state_dict = checkpoint.get('state_dict', checkpoint)
        bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise KeyError(f"checkpoint '{name}' has no 'state_dict' of tensors (key {bad[0]!r} is a "
                           f'{type(state_dict[bad[0]]).__name__}); keys: {sorted(checkpoint)[:8]}')
        meta = {k: v for k, v in checkpoint.get('meta', {}).items() if k in _PUBLISHED_META}
        published = dict(meta=meta, state_dict=weights_to_cpu(state_dict))
    if use_safetensors:
        from safetensors.torch import save as st_save
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in published['state_dict'].items()}
        data = st_save(tensors, metadata=dict(format='pt', kiln_meta=json.dumps(published['meta'], default=str)))
        ext = '.safetensors'
    else:
        buf = io.BytesIO()
        torch.save(published, buf)
        data, ext = buf.getvalue(), '.pth'
    stem = out[:-len('.safetensors')] if out.endswith('.safetensors') else os.path.splitext(out)[0]
    final = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}{ext}'
    if _is_url(final):
        _put_url(final, data)
    else:
        with atomic_write(_local(final), 'wb') as f:
            f.write(data)
    if logger is not None:
        removed = sorted(k for k in checkpoint if k not in published)
        logger.info(f'Published {final} (keys {sorted(published)}; removed {removed})')
    return final
