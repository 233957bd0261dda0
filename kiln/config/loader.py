"""Read config files (.py / .json / .yaml / .yml) into ConfigDicts, resolving inheritance.

Steps for one file: read the text; substitute the predefined variables (``{{fileDirname}}`` ...) and
environment variables (``{{$NAME:default}}``); turn ``{{_base_.a.b}}`` references into something
the format's parser accepts; parse; load and merge the base files (paths relative to this file, or
``package::path``); resolve the references; merge this file's keys into the merged bases.

A .py config is compiled from source (no AST round trip: that is most of the loading time) and
executed with a namespace hook: the assignment ``_base_ = [...]`` loads the bases at that point and
binds ``_base_`` to a read-only view of them, so later lines can use ``_base_.model`` and
``{{_base_.model}}`` (rewritten to ``_base_.model`` before compiling). A .py config that imports
anything also gets its own ``__import__`` (:class:`~kiln.config.pure_python.ConfigImporter`):
``with read_base():`` imports base configs, and in the pure-Python style other imports are lazy.
"""
from __future__ import annotations

import ast
import builtins
import copy
import os
import re
import types
from typing import Any, Callable

from .config_dict import ConfigDict
from .lazy import LazyObject
from .merge import merge_into, rebuild
from .package_configs import resolve_package_base
from .pure_python import ConfigImporter, analyze_imports

__all__ = ['SUPPORTED_EXTENSIONS', 'BASE_KEY', 'load_file', 'load_text']

SUPPORTED_EXTENSIONS = ('.py', '.json', '.yaml', '.yml')
BASE_KEY = '_base_'

_PREDEFINED_RE = re.compile(
    r'\{\{\s*(fileDirname|fileBasename|fileBasenameNoExtension|fileExtname)\s*\}\}')
# {{$NAME}}, {{$NAME:default}}, {{'$NAME:default'}}, {{"$NAME:default"}}
_ENV_RE = re.compile(r'\{\{\s*([\'"]?)\$(\w+)(?::(.*?))?\1\s*\}\}')
# {{_base_.a.b.0}}, optionally quoted as a whole
_BASE_REF_RE = re.compile(r'([\'"]?)\{\{\s*_base_\.([\w.]+?)\s*\}\}\1')
_FILTERED_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                   type)


def load_file(filename: str, use_predefined_variables: bool = True,
              lazy_import: bool | None = None,
              variables: dict[str, Any] | None = None) -> tuple[ConfigDict, str]:
    """Load a config file and its bases.

    Args:
        filename: the config file.
        use_predefined_variables: substitute ``{{fileDirname}}`` & co.
        lazy_import: ``.py`` files: bind imports of non-standard-library modules to
            :class:`LazyObject` (``True``), import them (``False``), or decide per file by
            MMEngine's rule (``None``: lazy when the file has no ``_base_ =`` and uses
            ``read_base()``, a relative import or a non-standard-library import).
        variables: ``{name: value}``: in every ``.py`` file read, a module-level assignment to
            ``name`` binds ``value`` instead, so that the values computed from the variable
            follow (``max_epochs=12`` also moves ``train_cfg.max_epochs`` and milestones written
            as ``max_epochs - 1``). Names no ``.py`` file assigns are ignored here.

    Returns:
        ``(cfg_dict, text)``: the merged config and the source text of every file read (bases first),
        each preceded by a ``# <path>`` line.

    Raises:
        FileNotFoundError: the file (or a base file; then the including file is named) is missing.
        ValueError: unsupported extension, or circular inheritance.
        SyntaxError: the file cannot be parsed (names the file and line).
    """
    path = os.path.abspath(os.path.expanduser(filename))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file not found: {filename!r} (resolved to {path})')
    loader = _Loader(use_predefined_variables, lazy_import, variables)
    cfg = loader.load(path, ())
    # As in MMEngine, a `_delete_` key is consumed where its dict replaces an inherited value;
    # one that had nothing to replace stays in the values.
    return cfg, '\n'.join(f'# {p}\n{t}' for p, t in loader.texts)


def load_text(text: str, file_format: str, use_predefined_variables: bool = True,
              lazy_import: bool | None = None) -> ConfigDict:
    """Load config source ``text`` of ``file_format`` ('.py', '.json', '.yaml', '.yml'; the dot is
    optional). Bases are resolved relative to the current directory. See :func:`load_file`."""
    ext = file_format if file_format.startswith('.') else f'.{file_format}'
    _check_extension(ext, '<string>')
    virtual = os.path.join(os.getcwd(), f'<string>{ext}')
    loader = _Loader(use_predefined_variables, lazy_import)
    return loader.load_source(text, virtual, ext, '<string>', ())


# -------------------------------------------------------------------------------------------------
def _check_extension(ext: str, display: str) -> None:
    if ext.lower() not in SUPPORTED_EXTENSIONS:
        raise ValueError(f'{display}: unsupported config format {ext!r}; expected one of '
                         f'{", ".join(SUPPORTED_EXTENSIONS)}')


def _substitute_predefined(text: str, path: str) -> str:
    dirname, basename = os.path.split(path)
    stem, ext = os.path.splitext(basename)
    values = dict(fileDirname=dirname.replace('\\', '/'), fileBasename=basename,
                  fileBasenameNoExtension=stem, fileExtname=ext)
    return _PREDEFINED_RE.sub(lambda m: values[m.group(1)], text)


def _substitute_env(text: str, display: str) -> str:
    def repl(m: re.Match) -> str:
        name, default = m.group(2), m.group(3)
        value = os.environ.get(name, default)
        if value is None:
            raise KeyError(f'{display}: environment variable {name!r} used in {m.group(0)!r} is not '
                           f'set and has no default (write {{{{${name}:default}}}})')
        return value
    return _ENV_RE.sub(repl, text)


def _lookup(cfg: Any, dotted: str, display: str) -> Any:
    node = cfg
    done = BASE_KEY
    for part in dotted.split('.'):
        try:
            if isinstance(node, (list, tuple)):
                node = node[int(part)]
            else:
                node = dict.__getitem__(node, part)
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f'{display}: {{{{_base_.{dotted}}}}} cannot be resolved: '
                           f'{done}.{part} is not defined in the base files') from None
        done = f'{done}.{part}'
    return copy.deepcopy(node)


class _BaseView(ConfigDict):
    """``_base_`` inside a .py config: the merged values of the base files themselves (MMEngine's
    semantics), so ``_base_.model.x = 1``, ``del _base_.model`` and ``m = _base_.model; m.pop('a')``
    change what this file inherits. Only a missing key gets a message naming the file."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        if name in self:
            return self[name]
        display = self.__dict__.get('_display_', 'config')
        keys = ', '.join(repr(k) for k in list(self)[:20])
        raise AttributeError(f'{display}: _base_.{name} is not defined in the base files '
                             f"(inherited keys: {keys or 'none'})")


def _base_view(cfg: ConfigDict, display: str) -> _BaseView:
    view = _BaseView.__new__(_BaseView)
    for key, value in dict.items(cfg):
        dict.__setitem__(view, key, value)
    object.__setattr__(view, '_display_', display)
    return view


# python ------------------------------------------------------------------------------------------
_REF_FUNC = '__kiln_base_ref__'


def _base_ref_to_expr(m: re.Match) -> str:
    # {{_base_.a.b}} in a .py file: a deep copy of the inherited value at this point
    return f'{_REF_FUNC}({m.group(2)!r})'


_BASE_ASSIGN_RE = re.compile(r'^[ \t]*_base_[ \t]*(?::[^=\n]*)?=(?!=)', re.M)


class _Namespace:
    """Locals mapping for executing a .py config: writes go to the globals dict (so functions and
    comprehensions see every name); assigning ``_base_`` loads the base files right away and
    rebinds ``_base_`` to their merged values (a :class:`_BaseView`).

    ``base_lines`` are the line numbers of the ``_base_ =`` statements, in order (found in the
    source text), used to name the line in errors about the bases."""

    def __init__(self, globals_: dict, load_bases: Callable[[Any, int | None], ConfigDict],
                 display: str, base_lines: list[int],
                 variables: dict[str, Any] | None = None) -> None:
        self.globals = globals_
        self._variables = variables or {}
        self.base_view: _BaseView | None = None
        self._load_bases = load_bases
        self._display = display
        self._base_lines = base_lines
        self._assignments = 0

    def __getitem__(self, key: str) -> Any:
        return self.globals[key]

    def __delitem__(self, key: str) -> None:
        del self.globals[key]

    def __contains__(self, key: object) -> bool:
        return key in self.globals

    def __setitem__(self, key: str, value: Any) -> None:
        if key == BASE_KEY:
            n = self._assignments
            self._assignments += 1
            line = self._base_lines[n] if n < len(self._base_lines) else None
            where = f'{self._display}, line {line}' if line else self._display
            if self.base_view is not None:
                raise ValueError(f'{where}: {BASE_KEY} is assigned twice')
            value = self.base_view = _base_view(self._load_bases(value, line), self._display)
        elif key in self._variables:  # a variable set from outside (`--cfg-options max_epochs=12`)
            value = copy.deepcopy(self._variables[key])
        self.globals[key] = value

    def base_ref(self, dotted: str) -> Any:
        """``{{_base_.a.b}}`` in a .py file: a deep copy of the inherited value."""
        base = self.base_view if self.base_view is not None else ConfigDict()
        return _lookup(base, dotted, self._display)


# json / yaml -------------------------------------------------------------------------------------
def _tokenize_base_refs(text: str, ext: str) -> tuple[str, dict[str, str]]:
    tokens: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        token = f'__kiln_base_ref_{len(tokens)}__'
        tokens[token] = m.group(2)
        quote = m.group(1)
        if quote:
            return f'{quote}{token}{quote}'
        if ext == '.json':  # outside a JSON string the token must be quoted
            line = text[text.rfind('\n', 0, m.start()) + 1:m.start()]
            if len(re.findall(r'(?<!\\)"', line)) % 2 == 0:
                return f'"{token}"'
        return token
    return _BASE_REF_RE.sub(repl, text), tokens


def _resolve_tokens(value: Any, tokens: dict[str, str], base_cfg: ConfigDict, display: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_tokens(v, tokens, base_cfg, display) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_tokens(v, tokens, base_cfg, display) for v in value]
    if isinstance(value, str) and '__kiln_base_ref_' in value:
        if value in tokens:
            return _lookup(base_cfg, tokens[value], display)
        for token, dotted in tokens.items():
            if token in value:
                value = value.replace(token, str(_lookup(base_cfg, dotted, display)))
    return value


def _parse_data(text: str, ext: str, display: str) -> Any:
    if ext == '.json':
        import json
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise SyntaxError(f'invalid JSON in config file {display}, line {e.lineno}: {e.msg}',
                              (display, e.lineno, e.colno, None)) from None
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, 'problem', None) or str(e)
        raise SyntaxError(f'invalid YAML in config file {display}, line {line}: {problem}',
                          (display, line, mark.column + 1 if mark else None, None)) from None




# python helpers ---------------------------------------------------------------------------------
def _is_import_value(value: Any) -> bool:
    return type(value) is LazyObject or isinstance(value, _FILTERED_TYPES)


def _compile(text: str, display: str) -> types.CodeType:
    try:
        return compile(text, display, 'exec')
    except SyntaxError as e:
        raise SyntaxError(f'invalid Python syntax in config file {display}, line {e.lineno}: '
                          f'{e.msg}', (display, e.lineno, e.offset, e.text)) from None


# the loader ---------------------------------------------------------------------------------------
class _Loader:
    """State of one ``load_file``/``load_text`` call: options, the texts read, and, per ``.py``
    file, the names its import statements bound (exported to ``from base import *``)."""

    def __init__(self, use_predefined: bool, lazy_import: bool | None,
                 variables: dict[str, Any] | None = None) -> None:
        self.use_predefined = use_predefined
        self.lazy_import = lazy_import
        self.variables = dict(variables or {})
        self.texts: list[tuple[str, str]] = []
        self.imports: dict[str, dict[str, Any]] = {}

    def load(self, path: str, stack: tuple[str, ...]) -> ConfigDict:
        if path in stack:
            chain = ' -> '.join(stack + (path,))
            raise ValueError(f'circular _base_ inheritance: {chain}')
        ext = os.path.splitext(path)[1]
        _check_extension(ext, path)
        with open(path, encoding='utf-8') as f:
            raw = f.read()
        return self.load_source(raw, path, ext.lower(), path, stack + (path,))

    def load_source(self, raw: str, path: str, ext: str, display: str,
                    stack: tuple[str, ...]) -> ConfigDict:
        text = _substitute_predefined(raw, path) if self.use_predefined else raw
        text = _substitute_env(text, display)
        if ext == '.py':
            cfg = self._load_python(text, path, display, stack)
        else:
            cfg = self._load_data(text, path, ext, display, stack)
        self.texts.append((display, raw))
        return cfg

    def load_bases(self, bases: Any, path: str, display: str,
                   stack: tuple[str, ...]) -> ConfigDict:
        if bases is None:
            return ConfigDict()
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
            raise TypeError(f'{display}: {BASE_KEY} must be a path or a list of paths, '
                            f'got {bases!r}')
        merged = ConfigDict()
        for base in bases:
            if '::' in base:
                base_path = resolve_package_base(base, display)
            else:
                base_path = os.path.normpath(
                    os.path.join(os.path.dirname(path), os.path.expanduser(base)))
                if not os.path.isfile(base_path):
                    raise FileNotFoundError(
                        f'{display}: base config {base!r} not found (looked for {base_path})')
            # like MMEngine, a base's values are fresh containers: nothing in them is shared with
            # another key, so changing one through ``_base_`` changes only that one
            # between bases (MMEngine refuses a key defined twice; the later file wins) a dict of
            # another ``type`` replaces the earlier one instead of merging into it
            merge_into(rebuild(self.load(base_path, stack)), merged, where=base_path,
                       copy_merged=True, replace_other_type=True)
        return merged

    def _load_python(self, text: str, path: str, display: str,
                     stack: tuple[str, ...]) -> ConfigDict:
        text = _BASE_REF_RE.sub(_base_ref_to_expr, text)
        code = _compile(text, display)

        def load_bases(bases: Any, line: int | None) -> ConfigDict:
            return self.load_bases(bases, path, f'{display}, line {line}' if line else display,
                                   stack)

        namespace: dict[str, Any] = {BASE_KEY: _base_view(ConfigDict(), display), '__file__': path,
                                     '__name__': '__kiln_config__', '__builtins__': builtins}
        bound: set[str] = set()
        importer = None
        if 'import' in text:
            bound, auto_lazy = analyze_imports(ast.parse(text, display))
            lazy = auto_lazy if self.lazy_import is None else bool(self.lazy_import)

            def load_base_module(base_path: str) -> tuple[ConfigDict, dict]:
                return self.load(base_path, stack), self.imports.get(base_path, {})
            importer = ConfigImporter(path, display, lazy, load_base_module)
            namespace['__builtins__'] = importer.builtins()
        base_lines = [text.count('\n', 0, m.start()) + 1 for m in _BASE_ASSIGN_RE.finditer(text)]
        local = _Namespace(namespace, load_bases, display, base_lines, self.variables)
        namespace[_REF_FUNC] = local.base_ref
        try:
            exec(code, namespace, local)  # type: ignore[arg-type]
        except Exception as e:
            e.add_note(f'(while executing config file {display})')
            raise
        if importer is not None:
            bound |= importer.from_bases
        imported = {k: namespace[k] for k in bound
                    if k in namespace and _is_import_value(namespace[k])}
        self.imports[path] = imported
        # MMEngine keeps the functions and classes a pure-Python (lazy) config defines itself
        dropped = types.ModuleType if importer is not None and importer.lazy else _FILTERED_TYPES
        own = ConfigDict({k: v for k, v in namespace.items()
                          if not k.startswith('__') and k != BASE_KEY and k not in imported
                          and not isinstance(v, dropped)})
        base = local.base_view.copy() if local.base_view is not None else ConfigDict()
        return merge_into(own, base, where=display, copy_merged=True)

    def _load_data(self, text: str, path: str, ext: str, display: str,
                   stack: tuple[str, ...]) -> ConfigDict:
        text, tokens = _tokenize_base_refs(text, ext)
        data = _parse_data(text, ext, display)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise TypeError(f'{display}: a config file must hold a mapping at top level, '
                            f'got {type(data).__name__}')
        base_cfg = self.load_bases(data.pop(BASE_KEY, None), path, display, stack)
        if tokens:
            data = _resolve_tokens(data, tokens, base_cfg, display)
        return merge_into(ConfigDict(data), base_cfg, where=display, copy_merged=True)
