"""Configs shipped inside installed packages.

Two spellings reach them (MMEngine's):

- ``_base_ = ['mmdet::_base_/default_runtime.py']``: a file under the package's config root;
- ``with read_base(): from mmdet.configs._base_.default_runtime import *``: a module path
  (pure-Python configs), ``pkg.configs.<path>`` meaning the same file.

A package's config roots are ``<pkg>/.mim/configs/`` (OpenMMLab's layout) and ``<pkg>/configs/``;
for kiln itself also the ``configs/`` directory of a source checkout. ``mmdet`` and ``mmengine``
are aliases of kiln here: ``'mmdet::x.py'`` is kiln's own ``x.py``. Packages are located with
``importlib.util.find_spec`` (their ``__init__`` is not run) and, for distribution names that differ
from the import name, ``importlib.metadata``.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

__all__ = ['CONFIG_PACKAGE_ALIASES', 'package_config_roots', 'resolve_package_base',
           'resolve_config_module']

#: Package names whose configs are kiln's own configs.
CONFIG_PACKAGE_ALIASES: dict[str, str] = {'mmdet': 'kiln', 'mmengine': 'kiln'}
_EXTENSIONS = ('.py', '.json', '.yaml', '.yml')


def _normalize(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _distribution_packages(name: str) -> list[str]:
    """Top-level import names provided by the installed distribution ``name`` (``[]`` if none)."""
    import importlib.metadata as metadata
    try:
        dist = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return []
    text = dist.read_text('top_level.txt')
    if text:
        return text.split()
    wanted = _normalize(dist.metadata['Name'] or name)
    return [top for top, dists in metadata.packages_distributions().items()
            if any(_normalize(d) == wanted for d in dists)]


def _package_dirs(package: str) -> list[Path]:
    """Directories of the package importable as ``package`` (or provided by the distribution of
    that name), found without importing it."""
    names = [package]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        names = _distribution_packages(package)
        specs = []
        for name in names:
            try:
                specs.append(importlib.util.find_spec(name))
            except (ImportError, ValueError):
                pass
    else:
        specs = [spec]
    return [Path(p) for s in specs if s is not None for p in (s.submodule_search_locations or [])]


def package_config_roots(package: str) -> list[Path]:
    """Existing config directories of ``package`` (aliases applied), in search order.

    Raises:
        ModuleNotFoundError: no importable package and no installed distribution of that name.
    """
    target = CONFIG_PACKAGE_ALIASES.get(package, package)
    dirs = _package_dirs(target)
    if not dirs:
        raise ModuleNotFoundError(f'no installed package or distribution named {target!r}',
                                  name=target)
    roots = [d / sub for d in dirs for sub in (Path('.mim', 'configs'), Path('configs'))]
    if target == 'kiln':  # a source checkout: <repo>/kiln and <repo>/configs
        roots += [d.parent / 'configs' for d in dirs if (d.parent / 'pyproject.toml').is_file()]
    return [r for r in roots if r.is_dir()]


def _alias_note(package: str) -> str:
    if package in CONFIG_PACKAGE_ALIASES:
        return (f' ({package!r} is an alias of kiln here: kiln reads its own configs, not those of '
                f'an installed {package})')
    return ''


def _close_files(roots: list[Path], rel: str) -> str:
    import difflib
    parent, _, name = rel.replace('\\', '/').rpartition('/')
    names = sorted({p.name + ('/' if p.is_dir() else '') for r in roots if (r / parent).is_dir()
                    for p in (r / parent).iterdir() if p.is_dir() or p.suffix in _EXTENSIONS})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if close:
        return '; did you mean ' + ', '.join(repr(f'{parent}/{c}' if parent else c)
                                             for c in close) + '?'
    return f"; {parent or '.'}/ holds: {', '.join(names[:20])}" if names else ''


def resolve_package_base(spec: str, where: str) -> str:
    """Path of the base ``'package::path/to/config.py'``.

    Args:
        spec: the ``_base_`` entry.
        where: the including file (and line), for messages.

    Raises:
        ValueError: ``spec`` is not ``package::path``.
        ModuleNotFoundError: the package is not installed.
        FileNotFoundError: the package has no such config (the message lists the roots searched
            and close file names).
    """
    package, _, rel = spec.partition('::')
    if not package or not rel or '::' in rel:
        raise ValueError(f'{where}: invalid package base {spec!r}; expected '
                         "'package::path/to/config.py'")
    try:
        roots = package_config_roots(package)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f'{where}: base config {spec!r}: {e}', name=e.name) from None
    for root in roots:
        path = root / rel
        if path.is_file():
            return str(path)
    searched = ', '.join(str(r) for r in roots) or \
        f'none: {package!r} has no .mim/configs/ or configs/ directory'
    raise FileNotFoundError(f'{where}: base config {spec!r} not found{_alias_note(package)}; '
                            f'searched {searched}{_close_files(roots, rel)}')


def resolve_config_module(dotted: str, where: str) -> str:
    """Path of the config named by an absolute module path in ``with read_base():``
    (``mmdet.configs._base_.default_runtime`` -> ``<kiln configs>/_base_/default_runtime.py``).

    ``pkg.a.b`` is ``<pkg dir>/a/b.py``; ``pkg.configs.a.b`` also ``<config root>/a/b.py``. Other
    config extensions (.json/.yaml/.yml) are tried after ``.py``.

    Raises:
        ImportError: ``dotted`` is a bare package name, or the package is not installed.
        FileNotFoundError: no such config file (the message lists the candidates).
    """
    parts = dotted.split('.')
    if len(parts) < 2:
        raise ImportError(f'{where}: `from {dotted} import ...` inside read_base() must name a '
                          'config module inside a package, e.g. '
                          '`from mmdet.configs._base_.default_runtime import *`')
    package = parts[0]
    target = CONFIG_PACKAGE_ALIASES.get(package, package)
    dirs = _package_dirs(target)
    if not dirs:
        raise ModuleNotFoundError(f'{where}: base config module {dotted!r}: no installed package '
                                  f'or distribution named {target!r}', name=target)
    stems = [d.joinpath(*parts[1:]) for d in dirs]
    if parts[1] == 'configs' and len(parts) > 2:
        stems += [r.joinpath(*parts[2:]) for r in package_config_roots(package)]
    for stem in stems:
        for ext in _EXTENSIONS:
            path = Path(f'{stem}{ext}')
            if path.is_file():
                return str(path)
    tried = ', '.join(f'{s}.py' for s in stems)
    raise FileNotFoundError(f'{where}: base config module {dotted!r} not found'
                            f'{_alias_note(package)}; tried {tried}')


def relative_config_path(module: str, level: int, config_path: str, where: str) -> str:
    """Path of ``from <level dots><module> import ...`` inside ``read_base()`` of ``config_path``:
    one dot is the config's directory, each further dot one directory up.

    Raises:
        FileNotFoundError: no such file (with any config extension).
    """
    base = os.path.dirname(config_path)
    for _ in range(level - 1):
        base = os.path.dirname(base)
    stem = os.path.join(base, *module.split('.')) if module else base
    for ext in _EXTENSIONS:
        if os.path.isfile(stem + ext):
            return os.path.normpath(stem + ext)
    shown = '.' * level + module
    raise FileNotFoundError(f'{where}: base config `from {shown} import ...` not found (looked '
                            f'for {os.path.normpath(stem)}.py)')
