"""Render a config as Python source (``Config.pretty_text``) or as JSON/YAML-safe builtins."""
from __future__ import annotations

import keyword
import math
from typing import Any

from .lazy import LazyObject

__all__ = ['format_python', 'object_to_str', 'to_serializable']

_WIDTH = 100
_SCALARS = (bool, int, str, bytes, complex, type(None))


def object_to_str(obj: Any) -> str:
    """Text used for values that have no literal form: ``'module.QualName'`` for classes and
    functions (``Registry.get`` imports such dotted paths back), ``repr(obj)`` otherwise."""
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    if (isinstance(obj, type) or callable(obj)) and module and qualname:
        return f'{module}.{qualname}'
    return repr(obj)


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


class _Imports:
    """Import statements for the lazy objects met while formatting, with collision-free names."""

    def __init__(self, reserved: set[str]) -> None:
        self.reserved = set(reserved)
        self.names: dict[tuple[str, str | None], str] = {}
        self.lines: list[str] = []

    def ref(self, obj: LazyObject) -> str:
        """Expression naming ``obj`` (its import statement is recorded once)."""
        module, attr = obj._module, obj._attr
        if attr:
            first, _, rest = attr.partition('.')
            key, source = (module, first), f'from {module} import {first}'
        else:
            parent, _, first = module.rpartition('.')
            rest = ''
            key = (parent or None, first) if parent else (module, None)
            source = f'from {parent} import {first}' if parent else f'import {module}'
        name = self.names.get(key)
        if name is None:
            name, n = first, 1
            while name in self.reserved or keyword.iskeyword(name):
                name, n = f'{first}_{n}', n + 1
            self.reserved.add(name)
            self.names[key] = name
            self.lines.append(source if name == first else f'{source} as {name}')
        return f'{name}.{rest}' if rest else name


def _scalar(value: Any, imports: _Imports | None = None) -> str:
    if type(value) is LazyObject:
        if imports is None:
            return repr(value._path)
        return imports.ref(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return f"float('{value}')"
    if isinstance(value, _SCALARS):
        return repr(value)
    return repr(object_to_str(value))


def _items(value: Any) -> tuple[str, str, list[tuple[str, Any]]] | None:
    """(open, close, [(prefix, item), ...]) for containers, None for scalars."""
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            return 'dict(', ')', [(f'{k}=', v) for k, v in value.items()]
        return '{', '}', [(f'{_flat(k)}: ', v) for k, v in value.items()]
    if isinstance(value, list):
        return '[', ']', [('', v) for v in value]
    if isinstance(value, tuple):
        return '(', ')', [('', v) for v in value]
    if isinstance(value, (set, frozenset)) and value:
        return '{', '}', [('', v) for v in value]
    return None


def _flat(value: Any, imports: _Imports | None = None) -> str:
    parts = _items(value)
    if parts is None:
        return 'set()' if isinstance(value, (set, frozenset)) else _scalar(value, imports)
    open_, close, items = parts
    body = ', '.join(prefix + _flat(v, imports) for prefix, v in items)
    if isinstance(value, tuple) and len(value) == 1:
        body += ','
    return f'{open_}{body}{close}'


def _format(value: Any, indent: int, used: int, imports: _Imports) -> str:
    """Format ``value`` whose first line starts at column ``used``; nested lines indent from
    ``indent``."""
    flat = _flat(value, imports)
    parts = _items(value)
    if parts is None or used + len(flat) <= _WIDTH or not parts[2]:
        return flat
    open_, close, items = parts
    pad = ' ' * (indent + 4)
    lines = [open_]
    for prefix, item in items:
        text = _format(item, indent + 4, indent + 4 + len(prefix), imports)
        lines.append(f'{pad}{prefix}{text},')
    lines.append(' ' * indent + close)
    return '\n'.join(lines)


def format_python(cfg: dict) -> str:
    """Return Python source that defines each top-level key of ``cfg`` as a variable.

    Executing the source (``Config.fromstring(text, '.py')``) gives back an equal config for
    values made of dicts, lists, tuples, sets, str, bytes, int, float, complex, bool and None.
    Classes and functions become their dotted import path as a string (``Registry.get`` resolves
    such paths); other objects become their ``repr`` string. Lazy imports of a pure-Python config
    (:class:`LazyObject`) become import statements at the top (``from torch.optim import SGD``)
    and their name in the values, so the text reloads in the pure-Python style. Keys that are
    not Python identifiers are written as ``globals()['key'] = ...``.
    """
    imports = _Imports({k for k in cfg if isinstance(k, str)} | {'dict', 'globals', 'float', 'set'})
    lines = []
    for key, value in dict.items(cfg):
        target = key if _is_name(key) else f'globals()[{key!r}]'
        lines.append(f'{target} = {_format(value, 0, len(target) + 3, imports)}')
    head = '\n'.join(imports.lines) + '\n\n' if imports.lines else ''
    return head + '\n'.join(lines) + '\n'


def to_serializable(value: Any) -> Any:
    """Convert to JSON/YAML-safe builtins: tuples and sets become lists, classes and functions
    their dotted path, other non-literal objects their ``repr``."""
    if isinstance(value, dict):
        return {k: to_serializable(v) for k, v in dict.items(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_serializable(v) for v in value]
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if type(value) is LazyObject:
        return value._path
    return object_to_str(value)
