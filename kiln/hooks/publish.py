"""Make a release copy of a checkpoint: only the chosen keys, with the sha256 prefix in the file name."""
from __future__ import annotations

import hashlib
import io
import logging

__all__ = ['publish_checkpoint']


def publish_checkpoint(path: str, keys: list[str], logger: logging.Logger | None = None) -> str:
    """Write ``<stem>-<sha8>.pth`` next to ``path`` holding ``{k: checkpoint[k] for k in keys}`` (keys the
    checkpoint lacks are skipped), where ``sha8`` is the first 8 hex digits of the sha256 of its serialised
    bytes, as OpenMMLab release names. Works for local paths and fsspec URLs. Call it on the main process only.

    Returns:
        The path (or URL) of the release file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import torch

    from kiln.runner.checkpoint import _load_checkpoint, save_checkpoint
    checkpoint = _load_checkpoint(path, 'cpu')
    published = {k: checkpoint[k] for k in keys if k in checkpoint}
    removed = sorted(k for k in checkpoint if k not in published)
    buffer = io.BytesIO()
    torch.save(published, buffer)
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    stem = path[:-4] if path.endswith('.pth') else path
    target = f'{stem}-{sha[:8]}.pth'
    save_checkpoint(published, target)
    if logger is not None:
        logger.info(f'Published {target} (keys {sorted(published)}; removed {removed})')
    return target
