"""Merging rules for config inheritance (``_base_``) and for ``Config.merge_from_dict``."""
from __future__ import annotations

from typing import Any

from .config_dict import ConfigDict

__all__ = ['DELETE_KEY', 'merge_into', 'rebuild', 'strip_delete_keys', 'set_by_path']

DELETE_KEY = '_delete_'


def merge_into(child: dict, base: dict, *, where: str = 'config', path: str = '',
               copy_merged: bool = False, replace_other_type: bool = False) -> dict:
    """Merge ``child`` into ``base`` in place and return ``base``.

    Rules (MMEngine's): a dict in ``child`` merges recursively into the dict under the same key in
    ``base`` unless it holds ``_delete_=True``, in which case it replaces it; every other value
    (ints, strings, lists, tuples ...) replaces the base value. A base value of ``None`` may be
    replaced by a dict.

    Args:
        child: the overriding mapping (its dicts may be modified: ``_delete_`` keys are popped).
        base: the mapping that receives the values.
        where: the file (or option source) named in error messages.
        path: dotted key path of ``base`` inside the whole config, for error messages.
        copy_merged: merge into a shallow copy of each nested dict of ``base`` (stored back under
            its key) instead of the dict itself, so that other references to it do not change
            (MMEngine's ``_merge_a_into_b``, used for inheritance).
        replace_other_type: a dict of ``child`` whose ``type`` differs from the ``type`` of the dict it
            meets in ``base`` replaces that dict instead of merging into it (as with ``_delete_=True``).
            Used between the files of one ``_base_`` list, where MMEngine refuses a key defined twice
            and kiln lets the later file win: listing ``voc0712.py`` after a COCO base then gives
            VOC's ``RepeatDataset`` without CocoDataset's ``ann_file`` / ``data_prefix`` left on it.
            A child file overriding its bases keeps MMEngine's rule (merge whatever the type).

    Raises:
        TypeError: a dict in ``child`` meets a non-dict, non-None value in ``base`` without
            ``_delete_=True``; the message names ``where`` and the key path.
    """
    for key, value in child.items():
        key_path = f'{path}.{key}' if path else str(key)
        if isinstance(value, dict) and key in base and not value.pop(DELETE_KEY, False):
            current = dict.__getitem__(base, key)
            if replace_other_type and isinstance(current, dict) and _other_type(value, current):
                base[key] = value
                continue
            if isinstance(current, dict):
                if copy_merged:
                    current = current.copy() if isinstance(current, ConfigDict) \
                        else ConfigDict(current)
                    dict.__setitem__(base, key, current)
                merge_into(value, current, where=where, path=key_path, copy_merged=copy_merged,
                           replace_other_type=replace_other_type)
                continue
            if current is not None:
                raise TypeError(
                    f'{where}: key {key_path!r} is a dict here but a {type(current).__name__} '
                    f'({current!r}) in the inherited config; add `{DELETE_KEY}=True` to the dict '
                    'to replace the inherited value')
        base[key] = value
    return base


def _other_type(value: dict, current: dict) -> bool:
    """Both dicts name a ``type`` and the names differ."""
    return 'type' in value and 'type' in current and value['type'] != dict.__getitem__(current, 'type')


def rebuild(value: Any) -> Any:
    """Copy every dict (as a ConfigDict), list and tuple of ``value``, recursively; other values are
    shared. After it, no container is reachable from two places."""
    if isinstance(value, dict):
        new = ConfigDict()
        for key, item in dict.items(value):
            dict.__setitem__(new, key, rebuild(item))
        return new
    if type(value) in (list, tuple):
        return type(value)(rebuild(v) for v in value)
    return value


def strip_delete_keys(value: Any) -> Any:
    """Remove every ``_delete_`` key left in dicts (also inside lists/tuples), in place."""
    if isinstance(value, dict):
        value.pop(DELETE_KEY, None)
        for item in value.values():
            strip_delete_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            strip_delete_keys(item)
    return value


def _index(part: str, seq: list | tuple, done: str, key: str, allow_list_keys: bool) -> int:
    kind = type(seq).__name__
    if not (part.lstrip('-').isdigit() and part.count('-') <= 1):
        raise KeyError(f'cannot set {key!r}: {done!r} is of type {kind}, so {part!r} must be an '
                       'integer index')
    if not allow_list_keys:
        raise KeyError(f'cannot set {key!r}: {done!r} is of type {kind}; indexing it with '
                       f'{part!r} needs allow_list_keys=True')
    index = int(part)
    if not -len(seq) <= index < len(seq):
        raise KeyError(f'cannot set {key!r}: {done}.{part} does not exist ({done!r} has '
                       f'{len(seq)} items)')
    return index


def set_by_path(cfg: dict, dotted_key: str, value: Any, *, allow_list_keys: bool = True) -> None:
    """Set ``cfg[a][b][c] = value`` for ``dotted_key='a.b.c'``, merging dict values.

    Missing dict keys on the way are created (as empty ConfigDicts); integer parts index into lists
    (``'pipeline.2.scale'``, negative indices allowed). A dict ``value`` merges into an existing dict
    (unless it holds ``_delete_=True``), as in config inheritance.

    Raises:
        KeyError: a part of the path cannot be followed (index out of range, non-integer index into
            a list, path goes through a scalar); the message names the part of the path that exists
            and what it is.
        TypeError: an element of a tuple would have to be modified (tuples are immutable).
    """
    parts = dotted_key.split('.')
    if not dotted_key or any(p == '' for p in parts):
        raise KeyError(f'invalid key {dotted_key!r}: expected names separated by single dots')
    node: Any = cfg
    done = ''
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            if last:
                current = dict.get(node, part)
                if isinstance(value, dict) and isinstance(current, dict) \
                        and not value.pop(DELETE_KEY, False):
                    merge_into(value, current, where='merge_from_dict', path=dotted_key)
                else:
                    node[part] = value
                return
            if part not in node:
                node[part] = ConfigDict()
            node = dict.__getitem__(node, part)
        elif isinstance(node, (list, tuple)):
            index = _index(part, node, done, dotted_key, allow_list_keys)
            if last:
                if isinstance(node, tuple):
                    raise TypeError(f'cannot set {dotted_key!r}: {done!r} is a tuple (immutable); '
                                    f'set the whole value of {done!r} instead')
                current = node[index]
                if isinstance(value, dict) and isinstance(current, dict) \
                        and not value.pop(DELETE_KEY, False):
                    merge_into(value, current, where='merge_from_dict', path=dotted_key)
                else:
                    node[index] = value if not isinstance(value, dict) else ConfigDict(value)
                return
            node = node[index]
        else:
            raise KeyError(f'cannot set {dotted_key!r}: {done!r} is of type '
                           f'{type(node).__name__} ({node!r:.50}), not a dict or list, so it has '
                           f'no key {part!r}')
        done = f'{done}.{part}' if done else part
