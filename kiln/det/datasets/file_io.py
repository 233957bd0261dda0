"""Small file helpers shared by detection datasets, transforms and hooks (local paths or fsspec URLs)."""
from __future__ import annotations

import os


def is_url(path: str) -> bool:
    """True when ``path`` names a remote/fsspec location (``s3://...``, ``http://...``, ``memory://...``)."""
    return '://' in str(path) and not str(path).startswith('file://')


def get_bytes(path: str | os.PathLike, backend_args: dict | None = None) -> bytes:
    """Read the whole file ``path`` (local, ``file://`` or any fsspec URL) and return its bytes.

    ``backend_args`` are fsspec storage options (ignored for local files).

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
    """
    path = str(path)
    if path.startswith('file://'):
        path = path[len('file://'):]
    if not is_url(path):
        try:
            with open(path, 'rb') as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f'File not found: {path!r}') from None
    import fsspec  # remote files only
    try:
        with fsspec.open(path, 'rb', **(backend_args or {})) as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'File not found: {path!r}') from None


def get_text(path: str | os.PathLike, backend_args: dict | None = None, encoding: str = 'utf-8') -> str:
    """Read the file ``path`` as text (see :func:`get_bytes`)."""
    return get_bytes(path, backend_args).decode(encoding)
