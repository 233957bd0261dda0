"""Run-scoped logging: HistoryBuffer, MessageHub, LogProcessor and per-runner loggers."""
from .history_buffer import HistoryBuffer, materialize
from .log_processor import LogProcessor
from .logger import MMLogger, close_logger, describe_exception, get_logger, log_to_files, print_log
from .message_hub import MessageHub

__all__ = ['HistoryBuffer', 'materialize', 'MessageHub', 'LogProcessor', 'get_logger',
           'close_logger', 'print_log', 'MMLogger', 'log_to_files', 'describe_exception']
