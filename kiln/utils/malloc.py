"""glibc malloc settings for training processes: give freed activation memory back to the system.

Why: PyTorch's CPU tensors come from ``malloc``. glibc serves blocks of at least ``M_MMAP_THRESHOLD`` bytes
(128 KiB at start) with ``mmap`` and unmaps them at ``free``, but its threshold is *dynamic*: the first time a
mmapped block is freed, the threshold rises to that block's size (up to 32 MiB on 64-bit). From then on most
activations of a detector (a few hundred KiB to a few tens of MiB) come from the ``brk`` heap and the per-thread
arenas, whose freed space fragments and is kept by the process. On an R50-FPN RetinaNet training step at batch 2
of 512x512 this raised the peak RSS by about 20 % (``benchmarks/README.md``, "Peak RSS").

:func:`tune_malloc` sets a *fixed* threshold with ``mallopt(M_MMAP_THRESHOLD, ...)`` (which also switches the
dynamic adjustment off) and a matching ``M_TRIM_THRESHOLD``, through ``ctypes``, once per process. ``kiln train``,
``kiln test`` and the Runner call it (``env_cfg`` key ``malloc_cfg``, see docs/distributed.md "Environment");
importing kiln changes nothing. Elsewhere (macOS, Windows, musl) it does nothing and says so in a debug message.

Off by default (opt in): it trades speed for memory. Measured on the BCCD demo (2 threads, quiet machine,
``benchmarks/README.md`` "Peak RSS"): a 128 KiB threshold lowers the peak RSS by 12 % (1166 -> 1026 MiB) but
doubles the time per training iteration (0.73 -> 1.47 s: every large tensor is page-faulted in again, ~9x the
page faults); 4 MiB: -6 % peak for +27 % time. Opt in with ``env_cfg=dict(malloc_cfg=True)`` (or a dict of
values) or the environment variable ``KILN_MALLOC=1`` (also ``on``/``true``/``yes``); ``KILN_MALLOC=0`` (also
``off``/``false``/``no``) or ``malloc_cfg=False`` keeps it off whatever the config says. glibc's own environment variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES=glibc.malloc.*``) win over kiln's defaults: a setting the user made there
is not touched.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ['DEFAULT_MALLOC_CFG', 'ENV_OPT_OUT', 'tune_malloc', 'malloc_settings']

_logger = logging.getLogger(__name__)

ENV_OPT_OUT = 'KILN_MALLOC'
# mallopt parameter numbers from glibc's <malloc.h>, and the environment variables / tunables that set them.
_PARAMS = {
    'mmap_threshold': (-3, 'MALLOC_MMAP_THRESHOLD_', 'glibc.malloc.mmap_threshold'),
    'trim_threshold': (-1, 'MALLOC_TRIM_THRESHOLD_', 'glibc.malloc.trim_threshold'),
    'arena_max': (-8, 'MALLOC_ARENA_MAX', 'glibc.malloc.arena_max'),
}
DEFAULT_MALLOC_CFG: dict[str, int | None] = dict(mmap_threshold=128 * 1024, trim_threshold=128 * 1024,
                                                 arena_max=None)

_applied: dict[str, int] = {}  # what this process has set so far (parameter name -> value)


def malloc_settings() -> dict[str, int]:
    """The settings :func:`tune_malloc` applied in this process so far (empty when none), e.g.
    ``{'mmap_threshold': 131072, 'trim_threshold': 131072}`` (bytes)."""
    return dict(_applied)


def _glibc() -> Any:
    """The C library as a ``ctypes.CDLL`` when it is glibc on Linux, else None."""
    if not sys.platform.startswith('linux'):
        return None
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # glibc only (musl has no such symbol)
        libc.mallopt  # noqa: B018 (AttributeError when missing)
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def tune_malloc(cfg: dict | bool | None = None, *, source: str = 'kiln') -> dict[str, int]:
    """Apply glibc malloc settings for training (see the module docstring for why), once per process.

    Args:
        cfg: ``None`` (the default): off, unless the environment variable ``KILN_MALLOC`` is ``1``/``on``/
            ``true``/``yes`` (then the defaults). ``True``: the defaults, :data:`DEFAULT_MALLOC_CFG`
            (``mmap_threshold=131072, trim_threshold=131072`` bytes; ``arena_max`` unset). A dict overrides some
            of them (keys ``mmap_threshold``, ``trim_threshold``, ``arena_max``; ints, bytes or number of
            arenas; None leaves that one alone). ``False``: do nothing.
        source: who asks (``'kiln train'``, ``'Runner'``), for the debug message.

    Returns:
        The settings applied by this call, ``{name: value}``; empty when nothing was applied (opted out, not
        glibc, already applied with the same values, or left to the user's ``MALLOC_*`` / ``GLIBC_TUNABLES``).

    Raises:
        ValueError: an unknown key in ``cfg`` or a value that is not a non-negative int (names the key);
            ``mallopt`` refusing a value.
    """
    if cfg is False:
        _logger.debug('%s: malloc settings off (env_cfg malloc_cfg=False)', source)
        return {}
    if os.environ.get(ENV_OPT_OUT, '').strip().lower() in ('0', 'off', 'false', 'no'):
        _logger.debug('%s: malloc settings off (%s=%s)', source, ENV_OPT_OUT, os.environ[ENV_OPT_OUT])
        return {}
    if cfg is None and os.environ.get(ENV_OPT_OUT, '').strip().lower() not in ('1', 'on', 'true', 'yes'):
        _logger.debug('%s: malloc settings off (the default; env_cfg malloc_cfg=True or %s=1 turns them on)',
                      source, ENV_OPT_OUT)
        return {}
    settings = dict(DEFAULT_MALLOC_CFG)
    if isinstance(cfg, dict):
        unknown = sorted(set(cfg) - set(_PARAMS))
        if unknown:
            raise ValueError(f'env_cfg.malloc_cfg: unknown key(s) {unknown}; known: {sorted(_PARAMS)}')
        settings.update(cfg)
    elif cfg not in (None, True):
        raise ValueError(f'env_cfg.malloc_cfg must be a dict, True, False or None, got {cfg!r}')
    for name, value in settings.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f'env_cfg.malloc_cfg.{name} must be a non-negative int, got {value!r}')
    libc = _glibc()
    if libc is None:
        _logger.debug('%s: malloc settings skipped: the C library is not glibc on Linux (platform %s)',
                      source, sys.platform)
        return {}
    tunables = os.environ.get('GLIBC_TUNABLES', '')
    done: dict[str, int] = {}
    for name, value in settings.items():
        param, env_var, tunable = _PARAMS[name]
        if value is None or _applied.get(name) == value:
            continue
        if env_var in os.environ or tunable in tunables:
            _logger.debug('%s: malloc %s left to the environment (%s / GLIBC_TUNABLES)', source, name, env_var)
            continue
        if libc.mallopt(param, value) != 1:
            raise ValueError(f'env_cfg.malloc_cfg.{name}={value}: glibc mallopt refused it')
        _applied[name] = done[name] = value
    if done:
        _logger.debug('%s: glibc malloc settings %s (opt out: %s=0 or env_cfg malloc_cfg=False)',
                      source, done, ENV_OPT_OUT)
    return done
