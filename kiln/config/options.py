"""Checks of ``--cfg-options`` overrides against the config they apply to.

``Config.merge_from_dict`` (MMEngine's) accepts any key and any value. Two mistakes then surface far
from their cause: a misspelt key (``train_cfgg.max_epochs=1``) is silently added and changes nothing,
and a value of the wrong type (``model.bbox_head.num_classes=three``) fails deep inside training.
:func:`check_options` finds both before anything is built.
"""
from __future__ import annotations

import difflib
from typing import Any

__all__ = ['check_options', 'variable_options']


def _close(name: str, keys: list[str]) -> list[str]:
    return difflib.get_close_matches(name, keys, n=3, cutoff=0.6)


def _type_problem(current: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace ``current``, or None. Only a string given where the config has a
    number or a boolean is refused: the other changes of type (a number where a tuple was, a list
    for a string ...) are legitimate overrides."""
    if isinstance(value, str) and isinstance(current, (bool, int, float)):
        return (f'the config has {current!r} ({type(current).__name__}) there, the option gives '
                f'the string {value!r}')
    return None


def check_options(cfg: Any, options: dict) -> list[str]:
    """Check ``options`` (``{'a.b.c': value}``) against ``cfg`` (a Config or dict).

    Returns:
        Warnings, one per key that does not exist yet and will be added: always for a top-level
        key (with the closest existing keys), and for a deeper key when an existing key next to it
        is spelt almost the same.

    Raises:
        TypeError: a value cannot replace the value in the config: a string where the config has a
            number or a boolean (``num_classes=three``); the message names the key, the value and
            the value in the config.
    """
    data = getattr(cfg, '_cfg_dict', cfg)  # a Config's values, lazy imports kept lazy
    warnings: list[str] = []
    for key, value in options.items():
        node: Any = data
        parts = str(key).split('.')
        done: list[str] = []
        for i, part in enumerate(parts):
            if isinstance(node, (list, tuple)):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    break  # merge_from_dict reports it
            elif isinstance(node, dict) or hasattr(node, 'keys'):
                keys = [str(k) for k in node.keys()]
                if part not in keys:
                    where = '.'.join(done)
                    close = _close(part, keys)
                    hint = f"; did you mean {', '.join(repr('.'.join(done + [c])) for c in close)}?" \
                        if close else ''
                    if i == 0:
                        warnings.append(f'{key!r}: the config has no top-level key {part!r}, it is '
                                        f'added{hint or " (no existing key is close)"}')
                    elif close:
                        warnings.append(f'{key!r}: {where!r} has no key {part!r}, it is added{hint}')
                    break
                node = dict.__getitem__(node, part) if isinstance(node, dict) else node[part]
            else:
                break  # merge_from_dict reports a path through a scalar
            done.append(part)
        else:
            problem = _type_problem(node, value)
            if problem is not None:
                raise TypeError(f'--cfg-options {key}={value!r}: {problem}; give a value of type '
                                f'{type(node).__name__} (e.g. {key}={node!r})')
    return warnings


def variable_options(cfg: Any, options: dict) -> dict:
    """The options that set a top-level value that is not a dict (``max_epochs=12``): in a ``.py``
    config these are module-level variables, re-evaluated with ``Config.fromfile(...,
    variables=...)`` so that the values computed from them follow."""
    data = getattr(cfg, '_cfg_dict', cfg)
    return {k: v for k, v in options.items()
            if '.' not in str(k) and not str(k).startswith('_') and k in data
            and not isinstance(v, dict) and not isinstance(dict.get(data, k), dict)}
