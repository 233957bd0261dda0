"""Config key paths of nested builds (``model.bbox_head.loss_cls``), for error messages.

No frame inspection: :func:`~kiln.registry.build_from_cfg` keeps a context-local (``contextvars``)
record of the build in progress: the key path of its config and the arguments passed to the
constructor. A build started while another one runs (a detector's ``__init__`` building its head
from its ``bbox_head`` argument) finds its config among the parent's arguments and so knows its path.
A :class:`~kiln.config.ConfigDict` read from a :class:`~kiln.config.Config` also carries its path
(:func:`kiln.config.key_path`), which names the root of the chain (``model``).
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Iterator, Mapping, NamedTuple

from kiln.config.config_dict import key_path

__all__ = ['BuildFrame', 'Location', 'current_build', 'building', 'locate', 'config_root']


class BuildFrame(NamedTuple):
    """A build in progress: ``path`` of its config ('' when unknown), whether the path is
    ``exact``, the ``type_name`` built and the keyword ``args`` passed to it."""
    path: str
    exact: bool
    type_name: str
    args: Mapping


_CURRENT: ContextVar[BuildFrame | None] = ContextVar('kiln_build_frame', default=None)
_ROOT: ContextVar[Mapping | None] = ContextVar('kiln_config_root', default=None)


class config_root:
    """Context manager naming the whole config being built (``with config_root(cfg): ...``).

    A top-level build whose dict carries no key path (a plain-dict copy of ``cfg.model``, as a
    runner may make before building) is then located by finding the top-level key of ``cfg``
    whose dict it copies: every value of that dict is the very same object in the copy. The
    ``kiln`` commands set it around building and running the Runner.
    """

    def __init__(self, cfg: Mapping | None) -> None:
        self.cfg = getattr(cfg, '_cfg_dict', cfg)

    def __enter__(self) -> Mapping | None:
        self._token = _ROOT.set(self.cfg)
        return self.cfg

    def __exit__(self, *exc: Any) -> None:
        _ROOT.reset(self._token)


def _extends(cfg: Any, value: Any) -> bool:
    """Every item of the dict ``value`` is in ``cfg`` as the same object (lazy values not read)."""
    if not isinstance(cfg, Mapping) or not isinstance(value, Mapping) or not value:
        return False
    get = (lambda k: dict.get(cfg, k, _MISSING)) if isinstance(cfg, dict) else \
        (lambda k: cfg[k] if k in cfg else _MISSING)
    items = dict.items(value) if isinstance(value, dict) else value.items()
    return all(get(k) is v for k, v in items)


_MISSING = object()


def _copied_from_root(cfg: Any) -> str | None:
    root = _ROOT.get()
    if root is None or not isinstance(cfg, Mapping):
        return None
    for key, value in dict.items(root) if isinstance(root, dict) else root.items():
        if isinstance(value, dict) and _extends(cfg, value):
            return str(key)
    return None


def current_build() -> BuildFrame | None:
    """The innermost build in progress in this context, or ``None``."""
    return _CURRENT.get()


class building:
    """Context manager making ``frame`` the current build (restored on exit)."""

    def __init__(self, frame: BuildFrame) -> None:
        self.frame = frame

    def __enter__(self) -> BuildFrame:
        self._token = _CURRENT.set(self.frame)
        return self.frame

    def __exit__(self, *exc: Any) -> None:
        _CURRENT.reset(self._token)


def _join(path: str, sub: str) -> str:
    return f'{path}.{sub}' if path else sub


def _walk(args: Mapping, depth: int) -> Iterator[tuple[str, Any]]:
    """(sub-path, value) of the dicts inside ``args``: values, list items, nested dicts."""
    for key, value in dict.items(args) if isinstance(args, dict) else args.items():
        if isinstance(value, Mapping):
            yield str(key), value
            if depth:
                for sub, inner in _walk(value, depth - 1):
                    yield f'{key}.{sub}', inner
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield f'{key}.{i}', item
                    if depth:
                        for sub, inner in _walk(item, depth - 1):
                            yield f'{key}.{i}.{sub}', inner


class Location(NamedTuple):
    """Where a config sits: its key ``path`` ('' if unknown), whether the path is ``exact``, and
    for inexact paths the type whose constructor made the config (``builder``)."""
    path: str
    exact: bool = True
    builder: str = ''

    def describe(self) -> str:
        """Prefix for messages: ``'model.bbox_head: '``; ``"inside model.bbox_head (a config made
        by 'FCOSHead'): "`` when not exact; ``''`` when unknown."""
        if self.exact:
            return f'{self.path}: ' if self.path else ''
        where = f'inside {self.path} ' if self.path else 'inside '
        return f'{where}(a config made by {self.builder!r}): '


def locate(cfg: Any) -> Location:
    """Key path of ``cfg`` about to be built.

    In order: ``cfg`` itself among the current build's arguments; the path attached to ``cfg``
    (:func:`kiln.config.key_path`); an argument equal to ``cfg`` (a copy); else the current build's
    path, not exact (the config was made inside that build). ``Location('')`` at top level without
    an attached path.
    """
    parent = _CURRENT.get()
    if parent is not None:
        for sub, value in _walk(parent.args, 3):
            if value is cfg:
                return Location(_join(parent.path, sub), parent.exact, parent.type_name)
    own = key_path(cfg)
    if own:
        return Location(own)
    if parent is None:
        copied = _copied_from_root(cfg)
        if copied:
            return Location(copied)
    if parent is not None:
        for sub, value in _walk(parent.args, 3):
            try:
                if value == cfg:
                    return Location(_join(parent.path, sub), parent.exact, parent.type_name)
            except Exception:  # an exotic __eq__
                continue
        # an argument extended by the constructor (`dict(rpn_head, train_cfg=...)`): every item of
        # the argument is the very same object in cfg; the largest such argument wins
        best, size = None, 0
        for sub, value in _walk(parent.args, 3):
            if len(value) > size and _extends(cfg, value):
                best, size = sub, len(value)
        if best is not None:
            return Location(_join(parent.path, best), parent.exact, parent.type_name)
        return Location(parent.path, False, parent.type_name)
    return Location('')
