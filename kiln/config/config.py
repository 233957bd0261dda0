"""`Config`: a loaded configuration (file name, source text and a ConfigDict of values)."""
from __future__ import annotations

import copy
import os
from typing import Any, Iterator, Mapping

from .config_dict import ConfigDict, set_key_path
from .custom_imports import import_custom_modules as _import_custom_modules
from .loader import SUPPORTED_EXTENSIONS, load_file, load_text
from .merge import set_by_path, strip_delete_keys
from .pretty import format_python, to_serializable

__all__ = ['Config']

RESERVED_KEYS = ('filename', 'text', 'pretty_text')
_INTERNAL = ('_cfg_dict', '_filename', '_text')


class Config:
    """A configuration: nested values with attribute and item access, loaded from a file or a dict.

    ``cfg.model.backbone.depth`` and ``cfg['model']['backbone']['depth']`` both work; every dict is
    a :class:`ConfigDict`. Methods not defined here (``get``, ``keys``, ``items``, ``pop``,
    ``update`` ...) are those of the underlying ConfigDict.

    Args:
        cfg_dict: the values (a dict; top-level keys must be strings and must not be one of
            ``filename``, ``text``, ``pretty_text``). ``None`` means empty.
        filename: the file the values came from (informational; see :meth:`fromfile`).
        cfg_text: the source text; when omitted and ``filename`` exists, the file is read.

    Raises:
        TypeError: ``cfg_dict`` is not a dict or has a non-string top-level key.
        KeyError: ``cfg_dict`` uses a reserved key.
    """

    def __init__(self, cfg_dict: dict | None = None, filename: str | os.PathLike | None = None,
                 *, cfg_text: str | None = None) -> None:
        if cfg_dict is None:
            cfg_dict = {}
        elif isinstance(cfg_dict, Config):
            cfg_dict = cfg_dict._cfg_dict
        if not isinstance(cfg_dict, dict):
            raise TypeError(f'Config expects a dict of values, got {type(cfg_dict).__name__}')
        for key in cfg_dict:
            if not isinstance(key, str):
                raise TypeError(f'Config: top-level keys must be strings, got {key!r}')
            if key in RESERVED_KEYS:
                raise KeyError(f'Config: {key!r} is a reserved key (reserved: {RESERVED_KEYS})')
        filename = os.fspath(filename) if filename is not None else None
        if cfg_text is None:
            cfg_text = ''
            if filename is not None and os.path.isfile(filename):
                with open(filename, encoding='utf-8') as f:
                    cfg_text = f.read()
        object.__setattr__(self, '_cfg_dict', set_key_path(ConfigDict(cfg_dict), ''))
        object.__setattr__(self, '_filename', filename)
        object.__setattr__(self, '_text', cfg_text)

    # loading ----------------------------------------------------------------------------------
    @classmethod
    def fromfile(cls, filename: str | os.PathLike, use_predefined_variables: bool = True,
                 import_custom_modules: bool = True, lazy_import: bool | None = None,
                 variables: dict[str, Any] | None = None) -> 'Config':
        """Load a ``.py``, ``.json``, ``.yaml`` or ``.yml`` config with its bases.

        Bases are named by ``_base_ = [...]`` (paths relative to the file, or
        ``'package::path/to/config.py'`` for configs shipped by an installed package; ``mmdet::``
        means kiln's own configs), or, in pure-Python configs, imported inside
        ``with read_base():``.

        Args:
            filename: path of the config file.
            use_predefined_variables: substitute ``{{fileDirname}}``, ``{{fileBasename}}``,
                ``{{fileBasenameNoExtension}}`` and ``{{fileExtname}}``.
            import_custom_modules: import the modules listed in ``custom_imports``.
            lazy_import: for ``.py`` files, ``True`` binds imports of non-standard-library modules
                to :class:`~kiln.config.LazyObject` (imported when built), ``False`` imports them
                while reading, ``None`` decides per file like MMEngine (lazy when the file has no
                ``_base_ =`` and uses ``read_base()``, a relative import or a non-standard-library
                import).
            variables: ``{name: value}`` for module-level variables of the ``.py`` files: every
                assignment to ``name`` in the file and its bases binds ``value`` instead, so the
                values computed from it follow (``variables=dict(max_epochs=12)`` also changes
                ``train_cfg = dict(max_epochs=max_epochs)``). Not in MMEngine. ``kiln`` commands
                use it for ``--cfg-options NAME=VALUE`` when ``NAME`` is a top-level key.

        Raises:
            FileNotFoundError: missing file or base file (names the including file).
            ModuleNotFoundError: a ``package::`` base names a package that is not installed.
            SyntaxError: unparsable file (names the file and line).
            ValueError: unsupported extension or circular inheritance.
            KeyError: unresolvable ``{{_base_.x}}`` or unset environment variable without default.
            ImportError: a ``custom_imports`` module failed to import; a bad import inside
                ``read_base()``.
        """
        filename = os.fspath(filename)
        cfg_dict, text = load_file(filename, use_predefined_variables, lazy_import, variables)
        if import_custom_modules and cfg_dict.get('custom_imports'):
            _import_custom_modules(cfg_dict['custom_imports'], filename)
        return cls(cfg_dict, filename=filename, cfg_text=text)

    @classmethod
    def fromstring(cls, cfg_str: str, file_format: str,
                   lazy_import: bool | None = None) -> 'Config':
        """Load config source text (e.g. the ``meta.cfg`` text stored in a checkpoint).

        ``file_format`` is one of ``.py``, ``.json``, ``.yaml``, ``.yml``; base paths are
        relative to the current directory; ``lazy_import`` as in :meth:`fromfile`. Errors name the
        file as ``<string>``.
        """
        cfg_dict = load_text(cfg_str, file_format, lazy_import=lazy_import)
        if cfg_dict.get('custom_imports'):
            _import_custom_modules(cfg_dict['custom_imports'], '<string>')
        return cls(cfg_dict, cfg_text=cfg_str)

    # properties -------------------------------------------------------------------------------
    @property
    def filename(self) -> str | None:
        """The path passed to :meth:`fromfile` (or to the constructor), else ``None``."""
        return self._filename

    @property
    def text(self) -> str:
        """Source text of the config file and all its base files (each after a ``# <path>`` line)."""
        return self._text

    @property
    def pretty_text(self) -> str:
        """Valid Python source defining every top-level key; reloading it gives an equal config."""
        return format_python(self._cfg_dict)

    # conversion / output ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Deep copy of the values as plain dicts (ConfigDicts converted, also inside lists)."""
        return self._cfg_dict.to_dict()

    def dump(self, file: str | os.PathLike | None = None) -> str | None:
        """Write the config to ``file`` (format from its extension: .py, .json, .yaml/.yml).

        Without ``file``, return the text in the format of :attr:`filename` (Python if unknown).
        JSON and YAML have no tuples: they are written as lists. Classes and functions are written
        as their dotted import path (a string).

        Raises:
            ValueError: unsupported extension.
        """
        if file is None:
            ext = os.path.splitext(self._filename or '')[1].lower() or '.py'
            return self._dumps(ext if ext in SUPPORTED_EXTENSIONS else '.py')
        file = os.fspath(file)
        ext = os.path.splitext(file)[1].lower()
        if ext not in SUPPORTED_EXTENSIONS:
            raise ValueError(f'cannot dump config to {file!r}: unsupported extension {ext!r} '
                             f'(expected one of {", ".join(SUPPORTED_EXTENSIONS)})')
        with open(file, 'w', encoding='utf-8') as f:
            f.write(self._dumps(ext))
        return None

    def _dumps(self, ext: str) -> str:
        if ext == '.py':
            return self.pretty_text
        data = to_serializable(self._cfg_dict)
        if ext == '.json':
            import json
            return json.dumps(data, indent=2)
        import yaml
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    @staticmethod
    def diff(cfg1: 'Config | Mapping | str | os.PathLike', cfg2: 'Config | Mapping | str | os.PathLike',
             context: int = 3) -> str:
        """Unified diff (``difflib``) of the :attr:`pretty_text` of two configs.

        Args:
            cfg1, cfg2: Configs, dicts, or paths of config files (loaded with :meth:`fromfile`).
            context: lines of context around each change.

        Returns:
            The diff text, with ``---``/``+++`` lines naming the files (``<cfg1>``/``<cfg2>`` when
            a config has no file), ``-`` lines only in ``cfg1`` and ``+`` lines only in ``cfg2``;
            ``''`` when both render the same.
        """
        import difflib
        texts, names = [], []
        for i, cfg in enumerate((cfg1, cfg2), 1):
            if isinstance(cfg, (str, os.PathLike)):
                cfg = Config.fromfile(cfg)
            elif not isinstance(cfg, Config):
                cfg = Config(cfg)
            texts.append(cfg.pretty_text.splitlines(keepends=True))
            names.append(cfg.filename or f'<cfg{i}>')
        return ''.join(difflib.unified_diff(texts[0], texts[1], names[0], names[1], n=context))

    def merge_from_dict(self, options: dict, allow_list_keys: bool = True) -> None:
        """Merge ``{'a.b.c': value}`` overrides (e.g. from ``--cfg-options``) into the config.

        A dotted key addresses nested dicts; integer parts index lists when ``allow_list_keys``
        (``'train_dataloader.dataset.pipeline.2.scale'``). Missing dict keys are created; a dict
        value merges into an existing dict unless it holds ``_delete_=True``.

        Raises:
            KeyError: a key path cannot be followed; the message names the part that exists and why
                the next part does not (index out of range, path through a scalar ...).
            TypeError: ``options`` is not a dict, or a tuple element would have to be modified.
        """
        if not isinstance(options, dict):
            raise TypeError(f'merge_from_dict expects a dict, got {type(options).__name__}')
        for key, value in copy.deepcopy(options).items():
            set_by_path(self._cfg_dict, str(key), value, allow_list_keys=allow_list_keys)
        strip_delete_keys(self._cfg_dict)

    # dict-like delegation ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _INTERNAL or (name.startswith('__') and name.endswith('__')):
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RESERVED_KEYS:
            raise AttributeError(f'{name!r} is a read-only Config property')
        setattr(self._cfg_dict, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __getitem__(self, key: str) -> Any:
        return self._cfg_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __delitem__(self, key: str) -> None:
        del self._cfg_dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._cfg_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg_dict)

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __dir__(self) -> list[str]:
        return list(super().__dir__()) + list(self._cfg_dict)

    def __repr__(self) -> str:
        state = self.__dict__
        return f"Config (path: {state.get('_filename')}): {state.get('_cfg_dict')!r}"

    # copy / pickle ----------------------------------------------------------------------------
    def __copy__(self) -> 'Config':
        return type(self)(self._cfg_dict.copy(), self._filename, cfg_text=self._text)

    def __deepcopy__(self, memo: dict) -> 'Config':
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        object.__setattr__(new, '_cfg_dict', set_key_path(copy.deepcopy(self._cfg_dict, memo), ''))
        object.__setattr__(new, '_filename', self._filename)
        object.__setattr__(new, '_text', self._text)
        return new

    def copy(self) -> 'Config':
        """Shallow copy (nested values shared)."""
        return copy.copy(self)

    def __getstate__(self) -> tuple:
        return self._cfg_dict, self._filename, self._text

    def __setstate__(self, state: tuple) -> None:
        cfg_dict, filename, text = state
        object.__setattr__(self, '_cfg_dict', set_key_path(cfg_dict, ''))
        object.__setattr__(self, '_filename', filename)
        object.__setattr__(self, '_text', text)
