"""`Registry`: a named mapping from strings to classes/functions, plus the function that builds them."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterator

from .build_functions import build_from_cfg
from .default_scope import scope_to_module

__all__ = ['Registry']


def object_path(obj: Any) -> str:
    """``'module.QualName'`` of a class or function (``repr`` for other objects)."""
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    return f'{module}.{qualname}' if module and qualname else repr(obj)


def _import_object(path: str) -> Any:
    """Import ``'package.module.Name'``; None when the module does not exist or has no such
    class/function. Errors raised inside an existing module propagate."""
    module_name, _, attr = path.rpartition('.')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + '.')):
            return None
        raise
    except (ImportError, ValueError):
        return None
    obj = getattr(module, attr, None)
    return obj if callable(obj) and not isinstance(obj, type(sys)) else None


class Registry:
    """Maps names to classes/functions and builds objects from config dicts (MMEngine's Registry).

    Args:
        name: registry name shown in messages (``'model'``).
        build_func: ``build_func(cfg, *args, registry=self, **kwargs)`` used by :meth:`build`;
            default: the parent's, else :func:`~kiln.registry.build_from_cfg`.
        parent: parent registry; :meth:`get` searches this registry, then its parents.
        scope: the package this registry belongs to (``'kiln'``). When omitted, it is the top-level
            package of the first of ``locations`` (``['myproj.models']`` -> ``'myproj'``), else the
            top-level package of the module of the first class/function registered (``'__main__'``
            in a script; ``'__main__'`` is also shown while nothing is registered). Names may be
            prefixed with a scope
            (``'kiln.ResNet'``, ``'mmalpha.LogSoftmax'``) to pick the registry of that scope in the
            same tree (``'mmdet'``/``'mmengine'`` are aliases of ``'kiln.det'``/``'kiln'``; a scope
            without a registry of its own, such as ``'kiln.det'``, uses the registry of its
            nearest parent package).
        locations: modules imported (once) before the first :meth:`get`, :meth:`build`, ``in``,
            ``len`` or iteration, so that their classes are registered.

    Raises:
        TypeError: wrong argument types.
        KeyError: ``parent`` already has a child with this scope.

    Example::

        ACTIVATIONS = Registry('activation', scope='myproj', locations=['myproj.activations'])

        @ACTIVATIONS.register_module()
        class Swish: ...

        act = ACTIVATIONS.build(dict(type='Swish'))
    """

    def __init__(self, name: str, build_func: Callable | None = None,
                 parent: 'Registry | None' = None, scope: str | None = None,
                 locations: list[str] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f'Registry name must be a non-empty string, got {name!r}')
        locations = list(locations or [])
        if not all(isinstance(loc, str) for loc in locations):
            raise TypeError(f'Registry {name!r}: locations must be module names, got {locations!r}')
        if scope is None and locations:
            scope = locations[0].partition('.')[0]
        if scope is not None and (not isinstance(scope, str) or not scope):
            raise TypeError(f'Registry {name!r}: scope must be a non-empty string, got {scope!r}')
        if parent is not None and not isinstance(parent, Registry):
            raise TypeError(f'Registry {name!r}: parent must be a Registry, got {parent!r}')
        if build_func is not None and not callable(build_func):
            raise TypeError(f'Registry {name!r}: build_func must be callable, got {build_func!r}')
        self._name = name
        self._scope = scope
        self._locations = locations
        self._imported = not locations
        self._module_dict: dict[str, Any] = {}
        self._children: dict[str, Registry] = {}
        self._unscoped_children: list[Registry] = []  # scope not known yet (see `scope`)
        self.parent: Registry | None = None
        if parent is not None:
            if scope is None:
                parent._unscoped_children.append(self)
            else:
                parent._add_child(self)
            self.parent = parent
        if build_func is None:
            build_func = parent.build_func if parent is not None else build_from_cfg
        self.build_func: Callable = build_func

    # properties -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> str:
        """The package this registry belongs to (see the class docstring)."""
        if self._scope is None:
            for obj in self._module_dict.values():
                module = getattr(obj, '__module__', None)
                if isinstance(module, str) and module:
                    self._scope = module.partition('.')[0]
                    break
            else:
                return '__main__'
        return self._scope

    @property
    def locations(self) -> list[str]:
        return list(self._locations)

    @property
    def module_dict(self) -> dict[str, Any]:
        """Names registered in this registry so far (no location import, no parents)."""
        return self._module_dict

    @property
    def children(self) -> dict[str, 'Registry']:
        """Child registries by scope."""
        return self._child_map()

    def _child_map(self) -> dict[str, 'Registry']:
        # children created without a scope join the map once their scope is known
        for child in list(self._unscoped_children):
            if child._scope is not None or child._module_dict:
                self._unscoped_children.remove(child)
                self._add_child(child)
        return self._children

    @property
    def root(self) -> 'Registry':
        reg = self
        while reg.parent is not None:
            reg = reg.parent
        return reg

    @staticmethod
    def split_scope_key(key: str) -> tuple[str | None, str]:
        """``'mmdet.RetinaNet'`` -> ``('mmdet', 'RetinaNet')``; ``'ResNet'`` -> ``(None, 'ResNet')``."""
        scope, dot, name = key.rpartition('.')
        return (scope, name) if dot else (None, key)

    def _add_child(self, child: 'Registry') -> None:
        if child.scope in self._children:
            raise KeyError(f"registry {self.name!r} already has a child with scope {child.scope!r} "
                           f'({self._children[child.scope]!r:.60})')
        self._children[child.scope] = child

    # locations --------------------------------------------------------------------------------
    def import_locations(self) -> None:
        """Import this registry's ``locations`` (once).

        Raises:
            ImportError: a location failed to import; names the registry and the module. The
                import is retried on the next call.
        """
        if self._imported:
            return
        self._imported = True
        for location in self._locations:
            try:
                importlib.import_module(location)
            except Exception as e:
                self._imported = False
                raise ImportError(f'registry {self.name!r} (scope {self.scope!r}) could not import '
                                  f'its location {location!r}: {type(e).__name__}: {e}') from e

    # registration -----------------------------------------------------------------------------
    def register_module(self, name: str | list[str] | None = None, force: bool = False,
                        module: Any = None) -> Any:
        """Register a class or function, as a decorator or a direct call.

        Args:
            name: name(s) to register under; default ``module.__name__``.
            force: replace an existing entry with the same name.
            module: the class/function to register now (call form); ``None`` for decorator form.

        Returns:
            ``module`` (call form) or a decorator returning the decorated object unchanged.

        Raises:
            TypeError: ``name``/``force`` of the wrong type, or ``module`` not callable.
            KeyError: the name is taken by another object and ``force`` is false (re-registering
                the same object, or a re-executed definition with the same module and qualified
                name, is allowed).
        """
        if not isinstance(force, bool):
            raise TypeError(f'register_module: force must be a bool, got {force!r}')
        if name is not None and not isinstance(name, str) and not (
                isinstance(name, (list, tuple)) and all(isinstance(n, str) for n in name)):
            raise TypeError(f'register_module: name must be a str, a list of str or None, '
                            f'got {name!r}')
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force)
            return obj
        return decorator

    def _register(self, module: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(module):
            raise TypeError(f'registry {self.name!r}: only classes and functions can be '
                            f'registered, got {module!r}')
        if name is None:
            if not hasattr(module, '__name__'):
                raise TypeError(f'registry {self.name!r}: {module!r} has no __name__; pass name=')
            names = [module.__name__]
        else:
            names = [name] if isinstance(name, str) else list(name)
        for key in names:
            if not key:
                raise TypeError(f'registry {self.name!r}: names must be non-empty')
            existing = self._module_dict.get(key)
            if existing is not None and existing is not module and not force \
                    and object_path(existing) != object_path(module):
                raise KeyError(f'{key!r} is already registered in registry {self.name!r} '
                               f'(scope {self.scope!r}) as {object_path(existing)}; use another '
                               'name or force=True')
            self._module_dict[key] = module

    # lookup -----------------------------------------------------------------------------------
    def _search(self, key: str) -> Any:
        """Exact name in this registry, then in its parents (importing their locations)."""
        reg: Registry | None = self
        while reg is not None:
            reg.import_locations()
            obj = reg._module_dict.get(key)
            if obj is not None:
                return obj
            reg = reg.parent
        return None

    def _tree(self) -> Iterator['Registry']:
        stack = [self.root]
        while stack:
            reg = stack.pop()
            yield reg
            stack.extend(reg._child_map().values())

    def registry_for_scope(self, scope: str) -> 'Registry | None':
        """The registry of ``scope`` in this registry's tree: exact scope (aliases applied), else
        the registry of the nearest parent package (``'kiln.det'`` -> scope ``'kiln'``)."""
        wanted = scope_to_module(scope)
        best, best_len = None, -1
        for reg in self._tree():
            own = scope_to_module(reg.scope)
            if own == wanted:
                return reg
            if wanted.startswith(own + '.') and len(own) > best_len:
                best, best_len = reg, len(own)
        return best

    def _get_scoped(self, key: str) -> Any:
        splits = [key.rsplit('.', 1), key.split('.', 1)]
        for scope, name in splits if splits[0] != splits[1] else splits[:1]:
            reg = self.registry_for_scope(scope)
            if reg is not None:
                obj = reg._search(name)
                if obj is not None:
                    return obj
        return None

    def get(self, key: str) -> Any:
        """Return the class/function registered as ``key``, or ``None``.

        Search order: ``key`` in this registry then its parents; for a dotted key
        ``'scope.Name'``, ``Name`` in the registry of that scope (see the class docstring); last,
        a dotted key is imported as a Python path (``'torch.nn.ReLU'``).

        Raises:
            TypeError: ``key`` is not a string.
            ImportError: a registry location fails to import.
        """
        if not isinstance(key, str):
            raise TypeError(f'registry {self.name!r}: get() expects a name (str), got {key!r}')
        obj = self._search(key)
        if obj is None and '.' in key:
            obj = self._get_scoped(key)
            if obj is None:
                obj = _import_object(key)
        return obj

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        """Build an object from ``cfg``: ``self.build_func(cfg, *args, registry=self, **kwargs)``
        (by default :func:`build_from_cfg`, which accepts ``default_args=``)."""
        return self.build_func(cfg, *args, **kwargs, registry=self)

    def searched_names(self) -> list[str]:
        """All names visible from this registry (itself and its parents)."""
        names: list[str] = []
        reg: Registry | None = self
        while reg is not None:
            names.extend(reg._module_dict)
            reg = reg.parent
        return names

    # container protocol -----------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._search(key) is not None or ('.' in key and self._get_scoped(key) is not None)

    def __len__(self) -> int:
        self.import_locations()
        return len(self._module_dict)

    def __bool__(self) -> bool:  # a registry is truthy even when empty; no location import
        return True

    def __iter__(self) -> Iterator[str]:
        self.import_locations()
        return iter(list(self._module_dict))

    def __repr__(self) -> str:
        head = f'Registry(name={self.name!r}, scope={self.scope!r}, ' \
               f'{len(self._module_dict)} modules'
        if self.parent is not None:
            head += f', parent={self.parent.name!r}/{self.parent.scope!r}'
        if self._locations:
            state = 'imported' if self._imported else 'not imported yet'
            head += f', locations={self._locations} ({state})'
        lines = [head + ')']
        if self._module_dict:
            width = max(len(n) for n in self._module_dict)
            lines.append(f'  {"Name":<{width}}  Object')
            lines += [f'  {n:<{width}}  {object_path(o)}'
                      for n, o in sorted(self._module_dict.items())]
        return '\n'.join(lines)
