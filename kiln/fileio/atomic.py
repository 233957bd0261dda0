"""Atomic file writes: write to a temporary sibling, fsync, then rename over the target."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ['atomic_write']


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb',
                 encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success make it ``path`` atomically.

    The data goes to a hidden temporary file in the same directory (so the final
    ``os.replace`` is a same-filesystem rename), which is flushed and fsynced before
    being renamed over ``path``; it gets the permissions any new file gets (``0o666`` minus the process
    umask), not ``mkstemp``'s private ``0o600``. Readers therefore see either the old file or the
    complete new one, never a partial file. If the ``with`` body raises, the
    temporary file is deleted, ``path`` is left untouched and the error propagates.
    Missing parent directories are created.

    Args:
        path: Destination file path.
        mode: ``'wb'`` (default) or ``'w'`` (text, then ``encoding`` applies,
            default UTF-8).
        encoding: Text encoding for ``mode='w'``.

    Yields:
        The open file object to write to.

    Raises:
        ValueError: If ``mode`` is not ``'w'`` or ``'wb'``.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{target.name}.', suffix='.tmp',
                                    dir=target.parent)
    try:
        if hasattr(os, 'fchmod'):  # mkstemp makes 0600: give the file the permissions open() would
            os.fchmod(fd, 0o666 & ~_umask())
        if mode == 'w':
            f = os.fdopen(fd, 'w', encoding=encoding or 'utf-8')
        else:
            f = os.fdopen(fd, 'wb')
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def _umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Best-effort fsync of a directory so the rename itself is durable."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
