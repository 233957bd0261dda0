"""Helpers shared by the tracker backends: lazy imports, config flattening, numeric scalars, run artifacts."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Iterator

from ..vis_backend import _to_number

__all__ = ['require', 'flatten_config', 'numeric_items', 'config_dict', 'artifact_files']


def require(module: str, package: str, backend: str) -> Any:
    """Import ``module`` or raise ImportError telling which pip package ``backend`` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f'{backend} needs the {package!r} package: pip install {package} '
                          f"(or pip install 'kiln[trackers]')") from e


def config_dict(config: Any) -> dict:
    """A plain dict of ``config`` (a kiln Config, a ConfigDict or a mapping)."""
    if hasattr(config, 'to_dict'):
        return config.to_dict()
    return dict(config)


def flatten_config(config: Any, keys: Any = None, max_len: int = 500) -> dict[str, Any]:
    """``{'model.backbone.depth': 50, ...}``: nested dicts joined with ``.``; lists, tuples and other values
    become strings cut to ``max_len`` characters (numbers, bools and str are kept). ``keys``: only these
    top-level keys (None: all)."""
    cfg = config_dict(config)
    if keys is not None:
        cfg = {k: cfg[k] for k in keys if k in cfg}
    out: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f'{prefix}.{k}' if prefix else str(k))
        elif isinstance(value, (bool, int, float)) or value is None:
            out[prefix] = value
        else:
            text = value if isinstance(value, str) else repr(value)
            out[prefix] = text[:max_len]

    walk(cfg, '')
    return out


def numeric_items(scalar_dict: dict[str, Any]) -> Iterator[tuple[str, float | int]]:
    """The items of ``scalar_dict`` that are numbers (tensors/numpy of one element included); others skipped."""
    for key, value in scalar_dict.items():
        if type(value) in (float, int):
            yield key, value
            continue
        try:
            yield key, _to_number(value, key)
        except (TypeError, ValueError):
            continue


def artifact_files(root: str | os.PathLike, suffixes: tuple[str, ...], exclude: tuple[str, ...] = ()
                   ) -> list[Path]:
    """Files under ``root`` whose names end with one of ``suffixes``, skipping directories named in
    ``exclude`` (e.g. the tracker's own store)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(suffixes)]
    return found
