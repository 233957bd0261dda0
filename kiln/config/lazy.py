"""`LazyObject`: a class/function/module imported by a pure-Python config, imported only when used.

In a pure-Python config (``from torch.optim import SGD`` ... ``optimizer=dict(type=SGD)``) the import
statements do not import anything while the config is read: each imported name is bound to a
``LazyObject`` that remembers its dotted path. The real object is imported when the value is built
(``build_from_cfg``), read through a :class:`~kiln.config.ConfigDict`, or with :meth:`build`.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__all__ = ['LazyObject', 'OPENMMLAB_MODULES', 'resolve_lazy']

#: OpenMMLab packages and the kiln module that mirrors their public import paths
#: (``mmdet.models.RetinaNet`` -> ``kiln.det.models.RetinaNet``). ``None``: no mirror module, the
#: name is looked up in kiln's registries instead (``mmcv.transforms.LoadImageFromFile``).
OPENMMLAB_MODULES: dict[str, str | None] = {
    'mmengine': 'kiln', 'mmdet': 'kiln.det', 'mmcv': None}


class LazyObject:
    """Placeholder for ``module.attr`` (a class, function, constant or module) imported on demand.

    Attribute access chains (``nn = LazyObject('torch.nn')``; ``nn.ReLU`` is
    ``LazyObject('torch.nn', 'ReLU')``); names starting with ``_`` are not chained. Two lazy objects
    are equal when their full dotted paths are equal (``torch.nn.ReLU``, however it was imported).
    Copying returns the object itself; pickling keeps the path.

    Args:
        module: dotted module name to import, e.g. ``'torch.optim'``.
        attr: dotted attribute path inside the module (``'SGD'``, ``'nn.ReLU'``), or ``None`` for
            the module itself.
        source: where the import statement was (a config file name), used in error messages.

    Raises:
        TypeError: calling a lazy object (values of a pure-Python config cannot be computed from
            imported objects while the config is read; use ``Config.fromfile(...,
            lazy_import=False)`` for that).
    """

    __slots__ = ('_module', '_attr', '_source')

    def __init__(self, module: str, attr: str | None = None, source: str | None = None) -> None:
        if not isinstance(module, str) or not module:
            raise TypeError(f'LazyObject: module must be a dotted module name, got {module!r}')
        object.__setattr__(self, '_module', module)
        object.__setattr__(self, '_attr', attr or None)
        object.__setattr__(self, '_source', source)

    # identity ---------------------------------------------------------------------------------
    @property
    def _path(self) -> str:
        return f'{self._module}.{self._attr}' if self._attr else self._module

    def __getattr__(self, name: str) -> 'LazyObject':
        if name.startswith('_'):
            raise AttributeError(name)
        attr = f'{self._attr}.{name}' if self._attr else name
        return LazyObject(self._module, attr, self._source)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f'cannot set {name!r} on the lazily imported {self._path!r}')

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LazyObject):
            return NotImplemented
        return self._path == other._path

    def __hash__(self) -> int:
        return hash(('LazyObject', self._path))

    def __repr__(self) -> str:
        return f'<lazy {self._path}>'

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        where = f'{self._source}: ' if self._source else ''
        raise TypeError(
            f'{where}{self._path} was imported lazily (pure-Python config), so it cannot be called '
            'while the config is read; use it as a value (type=...) or load the config with '
            'Config.fromfile(..., lazy_import=False)')

    def __copy__(self) -> 'LazyObject':
        return self

    def __deepcopy__(self, memo: dict) -> 'LazyObject':
        return self

    def __reduce__(self) -> tuple:
        return (LazyObject, (self._module, self._attr, self._source))

    # building ---------------------------------------------------------------------------------
    def build(self) -> Any:
        """Import the module and return the object.

        ``mmengine.X`` / ``mmdet.X`` paths that are not importable are looked up in kiln's mirror
        modules (``kiln.X`` / ``kiln.det.X``); ``mmcv`` paths by name in kiln's root registries.

        Raises:
            ImportError: the module or attribute does not exist (the message names the path and the
                config file that imported it).
        """
        try:
            return _import_path(self._module, self._attr)
        except ImportError as error:
            top = self._module.partition('.')[0]
            if top not in OPENMMLAB_MODULES or _module_exists(top):
                raise self._error(error) from error
            obj = _openmmlab_fallback(self._module, self._attr)
            if obj is None:
                raise self._error(error) from error
            return obj

    def _error(self, error: Exception) -> ImportError:
        where = f'{self._source}: ' if self._source else ''
        return ImportError(f'{where}cannot import {self._path!r} (imported by a pure-Python '
                           f'config): {error}')


def resolve_lazy(value: Any) -> Any:
    """``value.build()`` for a :class:`LazyObject`, ``value`` otherwise."""
    return value.build() if type(value) is LazyObject else value


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import_path(module_name: str, attr: str | None) -> Any:
    """Import ``module_name`` and follow ``attr``, like ``from a import b``: each dotted part is
    an attribute of the previous object, else a submodule to import."""
    parts = module_name.split('.') + (attr.split('.') if attr else [])
    try:
        obj = importlib.import_module(parts[0])
    except ModuleNotFoundError as e:
        raise ImportError(f'no module named {e.name!r}') from e
    current = parts[0]
    for part in parts[1:]:
        parent, current = current, f'{current}.{part}'
        try:
            obj = getattr(obj, part)
            continue
        except AttributeError:
            pass
        try:
            obj = importlib.import_module(current)
        except ModuleNotFoundError as e:
            if e.name != current:
                raise ImportError(f'while importing {current!r}: {e}') from e
            raise ImportError(f'{parent!r} has no attribute or submodule {part!r}') from None
    return obj


def _openmmlab_fallback(module_name: str, attr: str | None) -> Any:
    """``mmdet.models.RetinaNet`` -> ``kiln.det.models.RetinaNet``, else the name in kiln's root
    registries (after importing ``kiln.det`` for ``mmdet``/``mmcv``); ``None`` if not found."""
    top, _, rest = module_name.partition('.')
    mirror = OPENMMLAB_MODULES[top]
    if mirror is not None:
        try:
            return _import_path(f'{mirror}.{rest}' if rest else mirror, attr)
        except ImportError:
            pass
    if not attr:
        return None
    name = attr.rpartition('.')[2]
    from kiln.registry import ROOT_REGISTRIES, init_default_scope
    if top != 'mmengine':
        init_default_scope('kiln.det')
    for registry in ROOT_REGISTRIES.values():
        obj = registry.get(name)
        if obj is not None:
            return obj
    return None
