"""`build_from_cfg`: the default build function of every registry."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kiln.config.lazy import OPENMMLAB_MODULES, LazyObject

from .build_context import BuildFrame, Location, building, locate
from .default_scope import scope_to_module

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ['build_from_cfg', 'NotRegisteredError', 'check_config_types']


class NotRegisteredError(KeyError):
    """A config's ``type`` names nothing registered (a ``KeyError``, as in MMEngine). The message
    (``args[0]``) starts with the config key path when it is known and lists the closest names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def _path(obj: Any) -> str:
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    return f'{module}.{qualname}' if module and qualname else repr(obj)


def _close_names(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Registered names closest to ``name`` (case-insensitive, difflib)."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    short = name.rsplit('.', 1)[-1].lower()
    return [by_lower[m] for m in difflib.get_close_matches(short, list(by_lower), n=n, cutoff=0.6)]


def _not_found_message(name: str, registry: 'Registry', scope: str | None) -> str:
    chain, reg = [], registry
    while reg is not None:
        chain.append(f'{reg.name!r} (scope {reg.scope!r})')
        reg = reg.parent
    candidates = registry.searched_names()
    scoped = registry.registry_for_scope(scope) if scope else None
    if scoped is not None and scoped is not registry:
        chain.insert(0, f'{scoped.name!r} (scope {scoped.scope!r}, from _scope_)')
        candidates = scoped.searched_names() + candidates
    msg = f'{name!r} is not registered in the {registry.name!r} registry; searched ' \
          + ' -> '.join(chain)
    close = _close_names(name, candidates)
    if close:
        msg += f". Did you mean: {', '.join(repr(c) for c in close)}?"
    elif candidates:
        shown = sorted(set(candidates))
        more = f' (+{len(shown) - 30} more)' if len(shown) > 30 else ''
        msg += f". Registered: {', '.join(shown[:30])}{more}."
    else:
        msg += '. The registry is empty.'
    return msg + (' Register the class with @REGISTRY.register_module() and make sure its module '
                  'is imported (custom_imports=dict(imports=[...]) in the config, or '
                  'default_scope).')


def _signature_problem(obj: Any, kwargs: dict) -> str | None:
    """Why ``obj(**kwargs)`` cannot bind, with the accepted parameters; None if it binds (or the
    signature is unknown)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(**kwargs)
        return None
    except TypeError as bind_error:
        error = str(bind_error)
    params = [p for p in sig.parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    names = [p.name for p in params]
    keyword_names = [p.name for p in params if p.kind != p.POSITIONAL_ONLY]
    problems = []
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        for key in kwargs:
            if key not in keyword_names:
                close = difflib.get_close_matches(key, keyword_names, n=1)
                hint = f' (did you mean {close[0]!r}?)' if close else ''
                problems.append(f'unexpected argument {key!r}{hint}')
    missing = [p.name for p in params if p.default is p.empty and p.name not in kwargs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        problems.append(f"missing required argument(s) {', '.join(map(repr, missing))}")
    if not problems:
        problems.append(error)
    return f"{'; '.join(problems)}. Accepted parameters: {', '.join(names) or 'none'}"


def _import_scope(scope: str) -> None:
    """Import the package a ``_scope_`` names if it exists (e.g. ``'mmdet'`` -> kiln.det)."""
    module = scope_to_module(scope)
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        importlib.import_module(module)


def _resolve_lazy_type(lazy: LazyObject, registry: 'Registry', where: str) -> Any:
    """The class/function a lazily imported ``type`` names. An OpenMMLab path whose package is not
    installed (``mmdet.models.RetinaNet``) is looked up by name in ``registry`` first."""
    top = lazy._module.partition('.')[0]
    if top in OPENMMLAB_MODULES and importlib.util.find_spec(top) is None:
        if top != 'mmengine':
            _import_scope('mmdet')
        obj = registry.get((lazy._attr or '').rpartition('.')[2]) if lazy._attr else None
        if obj is not None:
            return obj
    try:
        return lazy.build()
    except ImportError as e:
        raise ImportError(f'{where}cannot build the lazily imported type {lazy._path!r} from the '
                          f'{registry.name!r} registry: {e}') from e


def _resolve_lazy_args(args: dict, where: str) -> None:
    """Import lazily imported argument values (also list/tuple items), in place."""
    for key, value in args.items():
        try:
            if type(value) is LazyObject:
                args[key] = value.build()
            elif type(value) in (list, tuple) and any(type(v) is LazyObject for v in value):
                args[key] = type(value)(v.build() if type(v) is LazyObject else v for v in value)
        except ImportError as e:
            raise ImportError(f'{where}argument {key!r}: {e}') from e


def build_from_cfg(cfg: Mapping, registry: 'Registry', default_args: Mapping | None = None) -> Any:
    """Build an object from a config dict: look up ``cfg['type']`` and call it with the other keys.

    Args:
        cfg: a dict/ConfigDict with ``type``: a registered name (optionally scope-prefixed,
            ``'kiln.ResNet'``), a dotted import path, or a class/function itself. The other keys are
            keyword arguments; ``_scope_`` (optional) selects the registry of that scope for this
            lookup.
        registry: where to look ``type`` up.
        default_args: keyword arguments used when ``cfg`` does not set them (may hold ``type``).

    Returns:
        The built object (an instance for classes, the return value for functions).

    Raises:
        TypeError: ``cfg``/``default_args`` are not dicts, ``type`` is neither a str nor callable,
            or the arguments do not fit the constructor (the message names the type, the bad
            argument(s) and the accepted parameters).
        KeyError: no ``type`` key, or ``type`` is not registered (the message names the registry,
            the scopes searched and the closest registered names).
        ImportError: a lazily imported ``type`` or argument (pure-Python config) cannot be
            imported.
        Exception: errors raised inside the constructor propagate with a note naming the type.

    Every message starts with the config key path of ``cfg`` when it is known
    (``model.bbox_head.loss_cls: ...``): from the path a :class:`~kiln.config.Config` attaches to
    the dicts read from it, and, for builds nested in a constructor (a detector building its head
    from its ``bbox_head`` argument), from the argument of the enclosing build that ``cfg`` is
    (see :mod:`kiln.registry.build_context`). ``type`` may be a :class:`~kiln.config.LazyObject`;
    lazy argument values are imported before the call.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"build_from_cfg: cfg must be a dict with a 'type' key, got "
                        f'{type(cfg).__name__}: {cfg!r:.200}')
    if default_args is not None and not isinstance(default_args, Mapping):
        raise TypeError(f'build_from_cfg: default_args must be a dict or None, got '
                        f'{type(default_args).__name__}')
    if not hasattr(registry, 'get') or not hasattr(registry, 'searched_names'):
        raise TypeError(f'build_from_cfg: registry must be a Registry, got {registry!r:.100}')
    location = locate(cfg)
    where = location.describe()
    args = dict(dict.items(cfg)) if isinstance(cfg, dict) else dict(cfg)  # lazy values kept
    for key, value in (default_args or {}).items():
        args.setdefault(key, value)
    if 'type' not in args:
        raise KeyError(f"{where}cannot build from the {registry.name!r} registry: the config has no "
                       f"'type' key (keys: {', '.join(map(repr, args)) or 'none'}); 'type' must "
                       'be a registered name or a class/function')
    obj_type = args.pop('type')
    scope = args.pop('_scope_', None)
    if isinstance(obj_type, str):
        obj_cls = None
        if scope is not None:
            _import_scope(scope)
            obj_cls = registry.get(f'{scope}.{obj_type}')
        if obj_cls is None:
            obj_cls = registry.get(obj_type)
        if obj_cls is None:
            raise NotRegisteredError(where + _not_found_message(obj_type, registry, scope))
        type_name = obj_type
    elif type(obj_type) is LazyObject:
        obj_cls, type_name = _resolve_lazy_type(obj_type, registry, where), obj_type._path
    elif callable(obj_type):
        obj_cls, type_name = obj_type, _path(obj_type)
    else:
        raise TypeError(f"{where}cannot build from the {registry.name!r} registry: 'type' must "
                        f'be a registered name (str) or a class/function, got '
                        f'{type(obj_type).__name__}: {obj_type!r}')
    _resolve_lazy_args(args, where)
    frame = BuildFrame(location.path, location.exact, type_name, args)
    try:
        with building(frame):
            return obj_cls(**args)
    except TypeError as e:
        problem = _signature_problem(obj_cls, args)
        if problem is None:
            e.add_note(_note(type_name, location, registry))
            raise
        raise TypeError(f'{where}cannot build {type_name!r} ({_path(obj_cls)}) from the '
                        f'{registry.name!r} registry: {problem}') from e
    except Exception as e:
        e.add_note(_note(type_name, location, registry))
        raise


def _note(type_name: str, location: Location, registry: 'Registry') -> str:
    at = (f' at {location.path}' if location.exact else f' inside {location.path}') \
        if location.path else ''
    return f'(while building {type_name!r}{at} from the {registry.name!r} registry)'


# checking a whole config before building it ----------------------------------------------------
def _registries_by_path() -> list[tuple[tuple[str, ...], str]]:
    """(key-path pattern, registry variable): where OpenMMLab configs always name a ``type`` of one
    registry. ``*`` matches any key, ``#`` any list index (a single dict there matches too)."""
    loader = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    rules: list[tuple[tuple[str, ...], str]] = [(('model',), 'MODELS')]
    for key in ('data_preprocessor', 'backbone', 'neck', 'bbox_head', 'rpn_head', 'roi_head',
                'mask_head', 'detector'):
        rules.append((('model', key, '#'), 'MODELS'))
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask', 'loss_iou', 'loss_obj'):
        for head in ('bbox_head', 'rpn_head', 'mask_head'):
            rules.append((('model', head, key), 'MODELS'))
            rules.append((('model', 'roi_head', head, '#', key), 'MODELS'))
    for name in loader:
        rules += [((name, 'dataset'), 'DATASETS'), ((name, 'sampler'), 'DATA_SAMPLERS'),
                  ((name, 'batch_sampler'), 'DATA_SAMPLERS'),
                  ((name, 'dataset', 'pipeline', '#'), 'TRANSFORMS')]
    rules += [(('default_hooks', '*'), 'HOOKS'), (('custom_hooks', '#'), 'HOOKS'),
              (('optim_wrapper',), 'OPTIM_WRAPPERS'), (('optim_wrapper', 'optimizer'), 'OPTIMIZERS'),
              (('param_scheduler', '#'), 'PARAM_SCHEDULERS'),
              (('val_evaluator', '#'), 'METRICS'), (('test_evaluator', '#'), 'METRICS'),
              (('train_cfg',), 'LOOPS'), (('val_cfg',), 'LOOPS'), (('test_cfg',), 'LOOPS'),
              (('visualizer',), 'VISUALIZERS'), (('visualizer', 'vis_backends', '#'), 'VISBACKENDS')]
    return rules


def _match(value: Any, pattern: tuple[str, ...], path: str) -> list[tuple[str, Any]]:
    if not pattern:
        return [(path, value)] if isinstance(value, Mapping) else []
    head, rest = pattern[0], pattern[1:]
    found: list[tuple[str, Any]] = []
    if head == '#':
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                found += _match(item, rest, f'{path}.{i}')
        elif isinstance(value, Mapping):
            found += _match(value, rest, path)
    elif isinstance(value, Mapping):
        keys = list(value.keys()) if head == '*' else [head] if head in value else []
        for key in keys:
            item = dict.get(value, key) if isinstance(value, dict) else value[key]
            found += _match(item, rest, f'{path}.{key}' if path else str(key))
    return found


def check_config_types(cfg: Mapping) -> None:
    """Check, without building anything, that the ``type`` names at the places where OpenMMLab
    configs always use one registry are registered: ``model`` and its ``backbone``/``neck``/
    ``*_head``/``loss_*`` dicts (MODELS), dataloader datasets, samplers and pipelines, hooks,
    optimizer wrapper and optimizer, schedulers, metrics, loops, visualizer. Names given as
    classes, lazy imports, dotted import paths or with ``_scope_`` are left to the build.

    Raises:
        NotRegisteredError: the first unregistered name, with its key path
            (``model.bbox_head.loss_cls: 'FocalLos' is not registered ... Did you mean 'FocalLoss'``).
    """
    from . import root
    data = getattr(cfg, '_cfg_dict', cfg)
    for pattern, registry_name in _registries_by_path():
        registry = getattr(root, registry_name)
        for path, item in _match(data, pattern, ''):
            obj_type = dict.get(item, 'type') if isinstance(item, dict) else item.get('type')
            if not isinstance(obj_type, str) or '_scope_' in item:
                continue
            if registry.get(obj_type) is None and not any(
                    obj_type in reg._module_dict for reg in registry._tree()):
                raise NotRegisteredError(f'{path}: ' + _not_found_message(obj_type, registry, None))
