"""A hook for ``kiln train`` child processes in tests: reads back whether glibc's mmap threshold is fixed.

glibc gives no getter for ``M_MMAP_THRESHOLD``; its behaviour shows it. With the dynamic threshold (glibc's
default) freeing an 8 MiB mmapped block raises the threshold to 8 MiB, so a following 4 MiB block comes from the
heap; with a fixed 128 KiB threshold (``kiln.utils.malloc``) that 4 MiB block is mmapped. ``mallinfo2().hblkhd``
(bytes in mmapped blocks, glibc >= 2.33) tells which.
"""
from __future__ import annotations

import ctypes
import json
import os.path as osp

from kiln.hooks import Hook
from kiln.registry import HOOKS

_FIELDS = ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks',
           'keepcost')


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def large_block_is_mmapped() -> bool:
    """True when a 4 MiB ``malloc`` made right after freeing an 8 MiB one is served by ``mmap``."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _Mallinfo2
    libc.free(libc.malloc(8 << 20))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(4 << 20)
    mmapped = libc.mallinfo2().hblkhd - before >= 4 << 20
    libc.free(block)
    return mmapped


@HOOKS.register_module(force=True)
class MallocProbeHook(Hook):
    """Writes ``{"mmapped": bool, "settings": {...}}`` to ``<work_dir>/malloc_probe.json`` before training."""

    def before_train(self, runner) -> None:
        from kiln.utils.malloc import malloc_settings
        with open(osp.join(runner.work_dir, 'malloc_probe.json'), 'w') as f:
            json.dump(dict(mmapped=large_block_is_mmapped(), settings=malloc_settings()), f)
