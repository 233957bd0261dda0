"""`ConfigDict`: a ``dict`` whose keys can also be read and written as attributes."""
from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator

from .lazy import LazyObject

__all__ = ['ConfigDict', 'to_builtin', 'key_path', 'set_key_path']

_PATH_ATTR = '_key_path_'
_DELETE = '_delete_'


def _raw_items(*args: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
    """``dict(*args, **kwargs).items()`` without resolving the lazy values of a ConfigDict."""
    if len(args) > 1:
        raise TypeError(f'expected at most 1 positional argument, got {len(args)}')
    items: list[tuple[Any, Any]] = []
    if args:
        source = args[0]
        items = list(dict.items(source) if isinstance(source, dict) else dict(source).items())
    return items + list(kwargs.items())


def key_path(value: Any) -> str | None:
    """The config key path attached to a ConfigDict (``'model.bbox_head'``), else ``None``.

    A :class:`~kiln.config.Config` attaches ``''`` to its top-level dict; every ConfigDict read from
    a ConfigDict that has a path gets ``<path>.<key>`` (``<path>.<key>.<index>`` for dicts in
    lists). ``build_from_cfg`` names this path in its errors.
    """
    attrs = getattr(value, '__dict__', None)
    return attrs.get(_PATH_ATTR) if isinstance(attrs, dict) else None


def set_key_path(value: Any, path: str | None) -> Any:
    """Attach ``path`` to ``value`` if it is a ConfigDict (dicts in a list/tuple get
    ``<path>.<index>``); return ``value``."""
    if isinstance(value, ConfigDict):
        object.__setattr__(value, _PATH_ATTR, path)
    elif type(value) in (list, tuple) and path is not None:
        for i, item in enumerate(value):
            if isinstance(item, ConfigDict):
                object.__setattr__(item, _PATH_ATTR, f'{path}.{i}')
    return value


def _convert(value: Any) -> Any:
    """Turn dicts (also inside plain lists/tuples) into ConfigDicts; return other values unchanged.

    A list or tuple is rebuilt only when one of its items changed, so values without dicts keep
    their identity.
    """
    if isinstance(value, dict):
        return value if isinstance(value, ConfigDict) else ConfigDict(value)
    if type(value) in (list, tuple):
        items = [_convert(v) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items)
    return value


def to_builtin(value: Any) -> Any:
    """Return a copy of ``value`` with every ConfigDict (also inside lists/tuples) as a plain dict."""
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(to_builtin(v) for v in value)
    return value


class ConfigDict(dict):
    """A ``dict`` with attribute access, used for every mapping inside a :class:`~kiln.config.Config`.

    ``cfg.model.backbone.depth`` is the same as ``cfg['model']['backbone']['depth']``. Dicts stored
    in a ConfigDict (directly, or inside plain lists and tuples) are converted to ConfigDicts, so
    attribute access works at every level (``cfg.train_pipeline[0].type``).

    Differences from ``dict`` (kept from MMEngine's ConfigDict):

    - ``update()`` merges recursively: a dict value updates the dict already stored under the same
      key instead of replacing it, unless it holds ``_delete_=True``. Use ``cfg[key] = value`` to
      replace.
    - ``copy()`` returns a (shallow) ConfigDict.
    - Reading a value (``cfg.x``, ``cfg['x']``, ``get``, ``pop``) that is a :class:`LazyObject`
      (an import of a pure-Python config) imports it and returns the real object, and so does
      turning the ConfigDict into a plain dict (``dict(cfg)``, ``{**cfg}``, ``f(**cfg)``);
      ``items()``, ``values()``, copies, ``to_dict()`` and dumps keep it lazy.

    Raises:
        AttributeError: reading or deleting a missing key as an attribute (the message names the
            key and lists the available ones), or assigning an attribute that is a dict method
            name such as ``items`` (use item assignment for such keys).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in _raw_items(*args, **kwargs):
            dict.__setitem__(self, key, _convert(value))

    def __iter__(self) -> Iterator[Any]:
        # Defined so that CPython's dict(cfg), {**cfg} and f(**cfg) copy through keys() and
        # __getitem__ (its fast path skips subclasses that override __iter__): lazy imports are
        # resolved and key paths attached when a ConfigDict becomes a plain dict.
        return dict.__iter__(self)

    # attribute access -------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            keys = ', '.join(repr(k) for k in list(self)[:20])
            raise AttributeError(
                f"ConfigDict has no key {name!r} (available keys: {keys or 'none'})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _DICT_ATTRS:
            raise AttributeError(
                f"cannot set attribute {name!r}: it is a ConfigDict method; use cfg[{name!r}] = ...")
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f'ConfigDict has no key {name!r}') from None

    def __dir__(self) -> Iterable[str]:
        return list(super().__dir__()) + [k for k in self if isinstance(k, str)]

    # reading: lazy imports and key paths -------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is LazyObject:
            return value.build()
        path = self.__dict__.get(_PATH_ATTR)
        if path is not None and isinstance(value, (dict, list, tuple)):
            set_key_path(value, f'{path}.{key}' if path else str(key))
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]`` if the key exists (lazy imports resolved), else ``default``."""
        return self[key] if key in self else default

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (a lazy import is resolved)."""
        value = dict.pop(self, key, *default)
        return value.build() if type(value) is LazyObject else value

    # conversion on write ----------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, _convert(value))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Recursive update: dict values are merged into dicts already stored under the same key;
        a dict value holding ``_delete_=True`` replaces the stored value instead (the ``_delete_``
        key itself is dropped)."""
        for key, value in _raw_items(*args, **kwargs):
            current = dict.get(self, key)
            delete = False
            if isinstance(value, dict) and _DELETE in value:
                delete = bool(dict.__getitem__(value, _DELETE))
                value = {k: v for k, v in dict.items(value) if k != _DELETE}
            if isinstance(current, ConfigDict) and isinstance(value, dict) and not delete:
                current.update(value)
            else:
                self[key] = value

    def __or__(self, other: Any) -> 'ConfigDict':
        if not isinstance(other, dict):
            return NotImplemented
        new = self.copy()
        for key, value in other.items():
            new[key] = value
        return new

    def __ror__(self, other: Any) -> 'ConfigDict':
        if not isinstance(other, dict):
            return NotImplemented
        new = ConfigDict(other)
        for key, value in self.items():
            new[key] = value
        return new

    def __ior__(self, other: Any) -> 'ConfigDict':
        for key, value in _raw_items(other):
            self[key] = value
        return self

    # copies -----------------------------------------------------------------------------------
    def copy(self) -> 'ConfigDict':
        """Shallow copy (nested values are shared)."""
        new = ConfigDict.__new__(ConfigDict)
        for key, value in dict.items(self):
            dict.__setitem__(new, key, value)
        if _PATH_ATTR in self.__dict__:
            object.__setattr__(new, _PATH_ATTR, self.__dict__[_PATH_ATTR])
        return new

    __copy__ = copy

    def __deepcopy__(self, memo: dict) -> 'ConfigDict':
        new = ConfigDict.__new__(type(self))
        memo[id(self)] = new
        for key, value in self.items():
            dict.__setitem__(new, copy.deepcopy(key, memo), copy.deepcopy(value, memo))
        if _PATH_ATTR in self.__dict__:
            object.__setattr__(new, _PATH_ATTR, self.__dict__[_PATH_ATTR])
        return new

    def __reduce__(self) -> tuple:
        return (type(self), (to_builtin(self),))

    def to_dict(self) -> dict:
        """Return a deep plain-``dict`` copy (nested ConfigDicts become dicts)."""
        return to_builtin(self)


_DICT_ATTRS = frozenset(dir(ConfigDict))
