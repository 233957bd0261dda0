"""Text listing of the root registries (used by the ``kiln registry [NAME]`` command)."""
from __future__ import annotations

import textwrap

from .registry import Registry, object_path
from .root import ROOT_REGISTRIES

__all__ = ['format_registries']


def _find(name: str) -> tuple[str, Registry]:
    wanted = name.strip().lower().replace(' ', '_')
    for var, reg in ROOT_REGISTRIES.items():
        if wanted in (var.lower(), reg.name.lower().replace(' ', '_')):
            return var, reg
    raise KeyError(f"unknown registry {name!r}; known registries: {', '.join(ROOT_REGISTRIES)}")


def _import(reg: Registry) -> str | None:
    try:
        reg.import_locations()
    except ImportError as e:
        return str(e)
    return None


def format_registries(name: str | None = None) -> str:
    """Listing text of the root registries (their ``locations`` are imported first).

    Args:
        name: ``None`` for an overview of every root registry (names only), or one registry by its
            variable name (``'MODELS'``) or registry name (``'model'``), case-insensitive, for a
            table of its names and the objects they map to.

    Returns:
        Multi-line text. A location that fails to import is reported in the text, not raised.

    Raises:
        KeyError: unknown registry ``name`` (the message lists the known ones).
    """
    if name is not None:
        var, reg = _find(name)
        error = _import(reg)
        lines = [f'{var} (registry {reg.name!r}, scope {reg.scope!r}, '
                 f'locations: {", ".join(reg.locations) or "none"}): '
                 f'{len(reg.module_dict)} registered']
        if error:
            lines.append(f'  ! {error}')
        if reg.module_dict:
            width = max(len(n) for n in reg.module_dict)
            lines += [f'  {n:<{width}}  {object_path(o)}' for n, o in sorted(reg.module_dict.items())]
        return '\n'.join(lines) + '\n'
    lines = []
    for var, reg in ROOT_REGISTRIES.items():
        error = _import(reg)
        lines.append(f'{var} ({reg.name!r}): {len(reg.module_dict)} registered')
        if error:
            lines.append(f'  ! {error}')
        if reg.module_dict:
            lines.append(textwrap.indent(textwrap.fill(', '.join(sorted(reg.module_dict)), 96),
                                         '    '))
    return '\n'.join(lines) + '\n'
