"""``custom_imports = dict(imports=[...], allow_failed_imports=False)``: modules imported at load time."""
from __future__ import annotations

import importlib
import types
import warnings
from typing import Any

__all__ = ['import_custom_modules']


def import_custom_modules(custom_imports: Any, where: str = 'config') -> list[types.ModuleType]:
    """Import the modules listed in a config's ``custom_imports`` (so their classes register).

    Args:
        custom_imports: ``dict(imports=str | list[str], allow_failed_imports=bool)``.
        where: config file named in messages.

    Returns:
        The imported modules, in order (failed ones are skipped when allowed).

    Raises:
        TypeError: ``custom_imports`` or ``imports`` has the wrong type.
        ImportError: a module cannot be imported and ``allow_failed_imports`` is false; the message
            names the module and the config file.
    """
    if not isinstance(custom_imports, dict):
        raise TypeError(f'{where}: custom_imports must be dict(imports=[...], '
                        f'allow_failed_imports=False), got {custom_imports!r}')
    unknown = set(custom_imports) - {'imports', 'allow_failed_imports'}
    if unknown:
        raise KeyError(f'{where}: custom_imports has unknown keys {sorted(unknown)}; expected '
                       "'imports' and 'allow_failed_imports'")
    imports = custom_imports.get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, (list, tuple)) or not all(isinstance(m, str) for m in imports):
        raise TypeError(f'{where}: custom_imports.imports must be a module name or a list of '
                        f'module names, got {imports!r}')
    allow_failed = bool(custom_imports.get('allow_failed_imports', False))
    modules = []
    for name in imports:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as e:
            if not allow_failed:
                raise ImportError(f'{where}: custom_imports could not import {name!r}: {e}') from e
            warnings.warn(f'{where}: custom_imports: {name!r} failed to import and was skipped '
                          f'({e})', stacklevel=2)
    return modules
