"""Which Runner is running now: the scope behind MMEngine-style ``get_current_instance()`` accessors.

MMEngine keeps process-wide registries of message hubs, loggers and visualizers and hands out "the latest
created" one (keyed by name and a timestamp). kiln has no such registries: each Runner owns its parts. Ported
code that calls ``MessageHub.get_current_instance()``, ``MMLogger.get_current_instance()``,
``Visualizer.get_current_instance()`` or ``print_log(msg, logger='current')`` gets the parts of the Runner whose
``train()`` / ``val()`` / ``test()`` is running in the current context.

The scope is a :class:`contextvars.ContextVar` set by :func:`running` (the Runner's entry points are wrapped with
:func:`scoped`) and reset when the entry point returns or raises, so

* two Runners never share: each sees its own parts while it runs;
* a Runner started inside another's hook is current until it returns, then the outer one is current again;
* threads started by user code do not inherit the scope (``contextvars`` semantics); copy the context with
  ``contextvars.copy_context().run(...)`` to hand it on.
"""
from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar
from typing import Any, Callable, Iterator, TypeVar

__all__ = ['running', 'scoped', 'current_runner', 'get_current_runner']

_CURRENT: ContextVar[Any] = ContextVar('kiln_current_runner', default=None)
F = TypeVar('F', bound=Callable[..., Any])


@contextlib.contextmanager
def running(runner: Any) -> Iterator[Any]:
    """Make ``runner`` the current Runner inside the ``with`` block (restores the previous one after)."""
    token = _CURRENT.set(runner)
    try:
        yield runner
    finally:
        _CURRENT.reset(token)


def scoped(method: F) -> F:
    """Decorate a Runner method so that the runner is current while the method runs."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with running(self):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def get_current_runner() -> Any:
    """The Runner running in this context, or None outside ``train()`` / ``val()`` / ``test()``."""
    return _CURRENT.get()


def current_runner(accessor: str) -> Any:
    """The running Runner, for the accessor named ``accessor`` (used in the error message).

    Raises:
        RuntimeError: No Runner is running in this context.
    """
    runner = _CURRENT.get()
    if runner is None:
        raise RuntimeError(
            f'{accessor}: no kiln Runner is running in this context. The current instance exists only while '
            'runner.train() / val() / test() runs (e.g. in hooks, models, datasets, metrics); outside a run, '
            'use runner.message_hub / runner.logger / runner.visualizer directly.')
    return runner
