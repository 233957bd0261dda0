"""Per-runner loggers that are not registered in :mod:`logging`'s global manager."""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

__all__ = ['MMLogger', 'get_logger', 'close_logger', 'print_log', 'log_to_files', 'describe_exception']

_DATEFMT = '%m/%d %H:%M:%S'
_FMT = '%(asctime)s - %(name)s - %(levelname)s - %(message)s'
_ERR_FMT = '%(asctime)s - %(name)s - %(levelname)s - %(pathname)s - %(funcName)s - %(lineno)d - %(message)s'


class _KilnFormatter(logging.Formatter):
    """``11/22 05:12:51 - kiln - INFO - message``; ERROR and above also give the location."""

    def __init__(self) -> None:
        super().__init__(_FMT, datefmt=_DATEFMT)
        self._err = logging.Formatter(_ERR_FMT, datefmt=_DATEFMT)

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            return self._err.format(record)
        return super().format(record)


class MMLogger(logging.Logger):
    """kiln's logger class (MMEngine's name): a plain :class:`logging.Logger` made by :func:`get_logger`.

    There is no global registry of loggers: :meth:`get_current_instance` returns the logger of the Runner
    running in this context (see :mod:`kiln.logging.current`).
    """

    @classmethod
    def get_current_instance(cls) -> logging.Logger:
        """The logger of the running Runner (``runner.logger``).

        Raises:
            RuntimeError: No Runner is running.
        """
        from .current import current_runner
        return current_runner('MMLogger.get_current_instance()').logger


def _level(log_level: int | str) -> int:
    if isinstance(log_level, int):
        return log_level
    level = logging.getLevelName(str(log_level).upper())
    if not isinstance(level, int):
        raise ValueError(f"get_logger: unknown log_level {log_level!r}; use 'DEBUG', 'INFO', "
                         "'WARNING', 'ERROR' or 'CRITICAL'")
    return level


def get_logger(name: str, log_file: str | Path | None = None, log_level: int | str = 'INFO',
               file_mode: str = 'w', distributed: bool = False) -> logging.Logger:
    """Create a NEW logger with kiln's format (each call returns a fresh object).

    The logger is built with ``logging.Logger(name)``, so it lives outside
    ``logging.getLogger``'s registry and does not propagate to the root logger: two
    runners in one process never share handlers. Release it with :func:`close_logger`.

    Handlers:
      * a stream handler on ``sys.stderr`` at ``log_level`` on rank 0, at ``ERROR`` on
        the other ranks;
      * when ``log_file`` is given, a file handler on rank 0 writing ``log_file``
        (its directory is created). With ``distributed=True`` every other rank ``r``
        also writes ``<stem>_rank<r><suffix>`` next to it.

    Args:
        name: Logger name, shown in every line (``11/22 05:12:51 - kiln - INFO - msg``).
        log_file: Optional path of the text log.
        log_level: ``'DEBUG'``, ``'INFO'``... or a ``logging`` level number.
        file_mode: ``'w'`` (truncate) or ``'a'`` (append).
        distributed: Whether non-zero ranks also write log files.

    Raises:
        ValueError: Unknown ``log_level`` or ``file_mode``.
    """
    from kiln.dist import get_rank  # imports torch; deferred so the logger stays light

    level = _level(log_level)
    if file_mode not in ('w', 'a'):
        raise ValueError(f"get_logger: file_mode must be 'w' or 'a', got {file_mode!r}")
    rank = get_rank()
    logger = MMLogger(name, level=level)
    logger.propagate = False
    formatter = _KilnFormatter()

    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(level if rank == 0 else logging.ERROR)
    stream.setFormatter(formatter)
    logger.addHandler(stream)

    if log_file is not None and (rank == 0 or distributed):
        path = Path(log_file)
        if rank != 0:
            path = path.with_name(f'{path.stem}_rank{rank}{path.suffix}')
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, mode=file_mode, encoding='utf-8')
        file_handler.setLevel(level)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Flush, close and remove every handler of ``logger`` (closes its log file)."""
    for handler in list(logger.handlers):
        try:
            handler.flush()
            handler.close()
        finally:
            logger.removeHandler(handler)


def log_to_files(logger: logging.Logger, level: int, message: str,
                 origin: traceback.FrameSummary | None = None) -> None:
    """Write ``message`` at ``level`` to the file handlers of ``logger`` only, not to its console stream (for what
    the terminal already shows another way: a CLI error line, a Python warning). ``origin``: the frame named as
    the record's source (default this function)."""
    if not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(logger.name, level, origin.filename if origin else __file__,
                               (origin.lineno or 0) if origin else 0, message, None, None,
                               func=origin.name if origin else None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def describe_exception(exc: BaseException) -> str:
    """``'<Type>: <message> (raised at <file>:<line>)'`` plus one indented line per note of ``exc``: how an error
    is written into a run's log file."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f' (raised at {frames[-1].filename}:{frames[-1].lineno})' if frames else ''
    notes = ''.join(f'\n  {n}' for n in getattr(exc, '__notes__', ()))
    return f'{type(exc).__name__}: {exc}{where}{notes}'


def print_log(msg: str, logger: logging.Logger | str | None = None,
              level: int = logging.INFO) -> None:
    """Log ``msg`` through ``logger``, or print it.

    Args:
        msg: The message.
        logger: A ``logging.Logger`` (logs at ``level``); ``'current'``: the logger of the
            Runner running in this context (printed to stdout when no Runner is running);
            ``None`` or any other string except ``'silent'`` prints to stdout; ``'silent'``
            drops it.
        level: ``logging`` level used with a Logger.

    Raises:
        TypeError: ``logger`` is of another type.
    """
    if logger == 'current':
        from .current import get_current_runner
        runner = get_current_runner()
        if runner is not None:
            logger = runner.logger
    if isinstance(logger, logging.Logger):
        logger.log(level, msg)
    elif logger is None or (isinstance(logger, str) and logger != 'silent'):
        print(msg)
    elif logger != 'silent':
        raise TypeError('print_log: logger must be a logging.Logger, None, "silent" or a str, '
                        f'got {type(logger).__name__}')
