"""Scopes: which Python package a config's ``default_scope`` (or a ``_scope_`` key) refers to."""
from __future__ import annotations

import importlib
import importlib.util

__all__ = ['SCOPE_ALIASES', 'scope_to_module', 'init_default_scope']

#: MMEngine/MMDetection scope names accepted for kiln's packages.
SCOPE_ALIASES: dict[str, str] = {'mmdet': 'kiln.det', 'mmengine': 'kiln'}


def scope_to_module(scope: str) -> str:
    """Python module named by ``scope`` (aliases applied): ``'mmdet'`` -> ``'kiln.det'``."""
    return SCOPE_ALIASES.get(scope, scope)


def init_default_scope(scope: str | None) -> str | None:
    """Import the package a config's ``default_scope`` names, so that its modules register.

    ``'kiln.det'`` (or its MMDetection alias ``'mmdet'``) imports :mod:`kiln.det`; ``None``,
    ``'kiln'`` and ``'mmengine'`` need nothing (kiln's own registries import their ``locations``
    lazily). Kiln keeps no global "current scope": this function only imports.

    Args:
        scope: the scope name, e.g. ``cfg.get('default_scope')``.

    Returns:
        The name of the module imported, or ``None`` when nothing was imported.

    Raises:
        TypeError: ``scope`` is not a string or None.
        ImportError: the module cannot be found; the message names the scope, the module tried
            and the known aliases. Errors raised while importing an existing module propagate
            unchanged (with a note naming the scope).
    """
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise TypeError(f'default_scope must be a string or None, got {scope!r}')
    module = scope_to_module(scope)
    if module == 'kiln':
        return None
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # parent package missing, or invalid name
        found = False
    if not found:
        aliases = ', '.join(f'{k!r} -> {v!r}' for k, v in SCOPE_ALIASES.items())
        raise ImportError(f'default_scope {scope!r}: could not find the module {module!r} '
                          f'(tried importing {module!r}; known scope aliases: {aliases})')
    try:
        importlib.import_module(module)
    except Exception as e:
        e.add_note(f'(while importing {module!r} for default_scope {scope!r})')
        raise
    return module
