"""Live progress display (``rich``) for validation, test, inference and dataset scans.

One helper for every command: :func:`track` wraps an iterable, :class:`ProgressHook` shows the val / test loops of a
Runner. The display is on when the console is a terminal and off otherwise (then the output is only the usual
MMEngine-format log lines); ``enabled=False`` (``kiln train/test --no-progress``) turns it off everywhere.
Training keeps its periodic log line: the hook does not touch the train loop.
"""
from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from kiln.hooks.hook import Hook
from kiln.registry import HOOKS

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.progress import Progress

__all__ = ['progress_enabled', 'make_progress', 'track', 'ProgressHook', 'add_progress_hook', 'configure_progress',
           'disable_progress']

T = TypeVar('T')


def _console(console: Console | None) -> Console:
    from rich.console import Console
    return console if console is not None else Console(file=sys.stdout)


def progress_enabled(enabled: bool | None = None, console: Console | None = None) -> bool:
    """Whether to show a progress display: ``enabled`` when it is a bool, else (None) whether ``console`` (default:
    stdout) is a terminal."""
    if enabled is not None:
        return bool(enabled)
    return _console(console).is_terminal


def make_progress(console: Console | None = None, transient: bool = True) -> Progress:
    """A ``rich.progress.Progress`` with description, bar, ``done/total``, rate (items/s), elapsed time and ETA."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second over rich's speed estimate window."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text('-- it/s' if speed is None else f'{speed:.1f} it/s', style='progress.data.speed')

    return Progress(TextColumn('[progress.description]{task.description}'), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn('eta'), TimeRemainingColumn(),
                    console=_console(console), transient=transient)


def track(iterable: Iterable[T], total: int | None = None, description: str = 'working',
          enabled: bool | None = None, console: Console | None = None,
          advance: Callable[[T], int] | None = None) -> Iterator[T]:
    """Yield the items of ``iterable`` while showing count, rate and ETA (a ``rich`` bar, removed when done).

    Args:
        iterable: What to iterate over.
        total: Number of units (default ``len(iterable)`` when it has one; None: unknown, no ETA, the count
            still goes up).
        description: Label in front of the bar.
        enabled: True / False, or None to show it only when ``console`` is a terminal.
        console: The ``rich`` console to draw on (default: stdout).
        advance: Units an item counts for, e.g. ``len`` when the items are batches of images or video frames
            and ``total`` counts images / frames (default: 1 per item). The bar advances once the caller asks
            for the next item, i.e. after the item was processed.
    """
    if not progress_enabled(enabled, console):
        yield from iterable
        return
    if total is None and advance is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with make_progress(console) as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task, 1 if advance is None else advance(item))


@HOOKS.register_module()
class ProgressHook(Hook):
    """Show a progress display during the Runner's validation and test loops (rank 0 only).

    A default hook of the Runner (``default_hooks`` name ``progress``): ``default_hooks=dict(progress=None)``
    removes it, ``default_hooks=dict(progress=dict(type='ProgressHook', enabled=False))`` turns it off. When a
    config also lists one in ``custom_hooks``, only one display is shown.

    While the display is up, the runner's console log lines are printed above it (the log file is unchanged).

    Args:
        enabled: True / False, or None (default): only when stdout is a terminal.
        console: ``rich`` console to draw on (default: stdout); for tests.
    """

    priority = 'VERY_LOW'

    def __init__(self, enabled: bool | None = None, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    def _start(self, runner: Any, mode: str) -> None:
        from kiln.dist import is_main_process
        if not is_main_process() or not progress_enabled(self.enabled, self.console):
            return
        if any(isinstance(h, ProgressHook) and h is not self and h._progress is not None
               for h in getattr(runner, 'hooks', [])):
            return  # another ProgressHook (default + custom_hooks) already shows this loop
        loader = runner.val_dataloader if mode == 'val' else runner.test_dataloader
        try:
            total = len(loader)
        except TypeError:
            total = None
        consoles = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)  # before rich redirects them
        self._progress = make_progress(self.console)
        self._progress.start()
        self._task = self._progress.add_task(mode, total=total)
        for handler in getattr(runner.logger, 'handlers', []):  # log lines go above the live display
            if type(handler) is logging.StreamHandler and any(handler.stream is c for c in consoles):
                self._swapped.append((handler, handler.setStream(_ConsoleStream(self._progress.console))))

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _stop(self) -> None:
        if self._progress is not None:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped = []
            self._progress.stop()
            self._progress = None

    def before_val_epoch(self, runner: Any) -> None:
        self._start(runner, 'val')

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._advance()

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._stop()

    def before_test_epoch(self, runner: Any) -> None:
        self._start(runner, 'test')

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._advance()

    def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._stop()

    def after_run(self, runner: Any) -> None:
        self._stop()  # a loop that raised never reached after_*_epoch


class _ConsoleStream:
    """A text stream that prints through a ``rich`` console (above its live display), without markup."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write(self, text: str) -> int:
        self.console.print(text, end='', markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


def disable_progress(cfg: Any) -> None:
    """Remove the Runner's default ``progress`` hook from ``cfg`` (``default_hooks.progress = None``) and any
    ProgressHook of ``cfg.custom_hooks``: what ``kiln train/test --no-progress`` do."""
    hooks = dict(cfg.get('default_hooks') or {})
    hooks['progress'] = None
    cfg['default_hooks'] = hooks
    custom = cfg.get('custom_hooks')
    if custom:
        cfg['custom_hooks'] = [h for h in custom
                               if not (isinstance(h, dict) and h.get('type') in ('ProgressHook', ProgressHook))]


def configure_progress(cfg: Any, enabled: bool = True) -> None:
    """Apply ``kiln train/test``'s progress switch to ``cfg``: nothing to add (``ProgressHook`` is a default
    Runner hook); with ``enabled=False`` (``--no-progress``) or ``env_cfg.progress=False`` in the config it is
    removed (:func:`disable_progress`)."""
    env_cfg = cfg.get('env_cfg') or {}
    if not enabled or env_cfg.get('progress', True) is False:
        disable_progress(cfg)


#: The name used before ``ProgressHook`` became a default Runner hook.
add_progress_hook = configure_progress
