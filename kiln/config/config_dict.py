"""`ConfigDict`: a ``dict`` whose keys can also be read and written as attributes."""
from __future__ import annotations

import copy
from typing import Any, Iterable

__all__ = ['ConfigDict', 'to_builtin']


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
      key instead of replacing it. Use ``cfg[key] = value`` to replace.
    - ``copy()`` returns a (shallow) ConfigDict.

    Raises:
        AttributeError: reading or deleting a missing key as an attribute (the message names the
            key and lists the available ones), or assigning an attribute that is a dict method
            name such as ``items`` (use item assignment for such keys).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _convert(value))

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

    # conversion on write ----------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, _convert(value))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Recursive update: dict values are merged into dicts already stored under the same key."""
        for key, value in dict(*args, **kwargs).items():
            current = self.get(key)
            if isinstance(current, ConfigDict) and isinstance(value, dict):
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
        for key, value in dict(other).items():
            self[key] = value
        return self

    # copies -----------------------------------------------------------------------------------
    def copy(self) -> 'ConfigDict':
        """Shallow copy (nested values are shared)."""
        new = ConfigDict.__new__(ConfigDict)
        dict.update(new, self)
        return new

    __copy__ = copy

    def __deepcopy__(self, memo: dict) -> 'ConfigDict':
        new = ConfigDict.__new__(type(self))
        memo[id(self)] = new
        for key, value in self.items():
            dict.__setitem__(new, copy.deepcopy(key, memo), copy.deepcopy(value, memo))
        return new

    def __reduce__(self) -> tuple:
        return (type(self), (to_builtin(self),))

    def to_dict(self) -> dict:
        """Return a deep plain-``dict`` copy (nested ConfigDicts become dicts)."""
        return to_builtin(self)


_DICT_ATTRS = frozenset(dir(ConfigDict))
