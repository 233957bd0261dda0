"""Pure-Python configs (MMEngine's "new config" style): ``with read_base():`` and lazy imports.

```python
from kiln.config import read_base          # or: from mmengine.config import read_base
with read_base():
    from .._base_.default_runtime import *   # base configs are imported like modules
    from .._base_.models.fcos_r50_fpn import model
from torch.optim import SGD                  # not imported while reading: a LazyObject

model.update(dict(bbox_head=dict(num_classes=3)))
optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.01))
```

While a ``.py`` config is executed, its ``__import__`` is :class:`ConfigImporter`: inside
``read_base()`` it loads config files (relative imports from the config's directory, absolute ones
from an installed package's configs); outside, in lazy mode, it returns :class:`LazyObject` for every
module outside the standard library.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import sys
import types
from typing import Any, Callable, Iterator

from .lazy import LazyObject
from .package_configs import relative_config_path, resolve_config_module

__all__ = ['read_base', 'ConfigImporter', 'analyze_imports']

_READ_BASE_MODULES = ('kiln.config', 'mmengine.config')
_EAGER = frozenset(sys.stdlib_module_names) | {'__future__'}


def read_base() -> contextlib.AbstractContextManager:
    """Context manager marking the base-config imports of a pure-Python config.

    Inside ``with read_base():`` of a config being loaded by :meth:`Config.fromfile`,
    ``from .base import *`` / ``from .base import name`` load the config file ``base.py`` (one dot:
    the config's directory, each further dot one level up) and bind its top-level values;
    ``from mmdet.configs._base_.x import *`` loads a package's config (see
    :mod:`kiln.config.package_configs`). Outside config loading it does nothing.
    """
    return contextlib.nullcontext()


def _binds(stmts: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements (also inside if/try/with/for bodies, not in functions/classes)."""
    for node in stmts:
        yield node
        for field in ('body', 'orelse', 'finalbody'):
            yield from _binds(getattr(node, field, None) or [])
        for handler in getattr(node, 'handlers', None) or []:
            yield from _binds(handler.body)


def _is_read_base(node: ast.stmt) -> bool:
    return isinstance(node, ast.With) and any(
        isinstance(item.context_expr, ast.Call)
        and getattr(item.context_expr.func, 'id', getattr(item.context_expr.func, 'attr', None))
        == 'read_base' for item in node.items)


def analyze_imports(tree: ast.Module) -> tuple[set[str], bool]:
    """Names bound by import statements outside ``read_base()``, and whether the config is in the
    pure-Python (lazy-import) style by MMEngine's rules: no ``_base_ =`` assignment, and a
    ``with read_base():``, a relative import, or an import of a module outside the standard
    library."""
    names: set[str] = set()
    base_imports: set[int] = set()
    lazy = False
    has_base = False
    for node in _binds(tree.body):
        if _is_read_base(node):
            lazy = True
            base_imports.update(id(n) for n in _binds(node.body))
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            has_base = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in base_imports:
            for alias in node.names:
                if alias.name != '*':
                    names.add(alias.asname or alias.name.partition('.')[0])
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ''] if node.level == 0 else []
                lazy = lazy or node.level > 0
            else:
                modules = [a.name for a in node.names]
            lazy = lazy or any(m.partition('.')[0] not in _EAGER for m in modules)
    return names, lazy and not has_base


class _ReadBaseShim:
    """What ``from kiln.config import read_base`` (or ``mmengine.config``) gives a config being
    loaded: ``read_base`` bound to that load; other names come from :mod:`kiln.config`."""

    def __init__(self, importer: 'ConfigImporter') -> None:
        self.read_base = importer.read_base

    def __getattr__(self, name: str) -> Any:
        import kiln.config
        return getattr(kiln.config, name)


class ConfigImporter:
    """The ``__import__`` of one ``.py`` config while it executes.

    Args:
        path: the config file (relative base imports start from its directory).
        display: the name used in messages.
        lazy: bind non-standard-library imports to :class:`LazyObject` instead of importing.
        load_base: ``path -> (values, imported)``: loads a base config; ``imported`` holds the
            names that base bound by import statements (exported by ``import *`` too).

    Attributes:
        from_bases: names bound from bases' imports (to drop from this config's values).
    """

    def __init__(self, path: str, display: str, lazy: bool,
                 load_base: Callable[[str], tuple[dict, dict]]) -> None:
        self.path = path
        self.display = display
        self.lazy = lazy
        self.load_base = load_base
        self.reading_base = False
        self.from_bases: set[str] = set()

    def builtins(self) -> dict:
        """A copy of the builtins with this importer as ``__import__``."""
        namespace = dict(builtins.__dict__)
        namespace['__import__'] = self
        return namespace

    @contextlib.contextmanager
    def read_base(self) -> Iterator[None]:
        """See :func:`kiln.config.read_base`."""
        if self.reading_base:
            raise SyntaxError(f'{self.display}: read_base() blocks cannot be nested')
        self.reading_base = True
        try:
            yield
        finally:
            self.reading_base = False

    def __call__(self, name: str, globals: dict | None = None, locals: Any = None,
                 fromlist: tuple | list | None = (), level: int = 0) -> Any:
        fromlist = tuple(fromlist or ())
        if self.reading_base:
            return self._import_base(name, fromlist, level)
        if level:
            raise ImportError(f'{self.display}: relative import `from {"." * level}{name} import '
                              '...` outside `with read_base():`; base configs are imported inside '
                              'read_base()')
        if 'read_base' in fromlist and name in _READ_BASE_MODULES:
            return _ReadBaseShim(self)
        top = name.partition('.')[0]
        if not self.lazy or top in _EAGER:
            return builtins.__import__(name, globals, locals, fromlist, level)
        if '*' in fromlist:
            raise ImportError(f'{self.display}: `from {name} import *` cannot be imported lazily '
                              '(pure-Python config); import the names you use')
        return LazyObject(name if fromlist else top, None, self.display)

    def _import_base(self, name: str, fromlist: tuple, level: int) -> types.ModuleType:
        shown = '.' * level + name
        if not fromlist or not name:
            statement = f'from {shown} import ...' if fromlist else f'import {shown}'
            raise ImportError(f'{self.display}: inside `with read_base():` write `from <config> '
                              'import *` or `from <config> import name` naming a config file '
                              f'(e.g. `from .._base_.default_runtime import *`), not `{statement}`')
        if level:
            path = relative_config_path(name, level, self.path, self.display)
        else:
            path = resolve_config_module(name, self.display)
        cfg, imported = self.load_base(path)
        module = types.ModuleType(shown)
        values = dict(imported)
        values.update(dict.items(cfg))
        module.__dict__.update(values)
        module.__file__ = path
        module.__all__ = list(values)
        if '*' in fromlist:
            self.from_bases.update(imported)
        else:
            self.from_bases.update(n for n in fromlist if n in imported)
        return module
