import logging
import re

import pytest

from kiln.logging import close_logger, get_logger, print_log

LINE = re.compile(r'^\d\d/\d\d \d\d:\d\d:\d\d - kiln - INFO - hello$')


def test_new_logger_each_call_not_global(tmp_path):
    a = get_logger('kiln', log_file=tmp_path / 'a.log')
    b = get_logger('kiln', log_file=tmp_path / 'b.log')
    try:
        assert a is not b
        assert not isinstance(logging.Logger.manager.loggerDict.get('kiln'), logging.Logger)
        assert logging.getLogger('kiln') is not a
        assert not a.propagate
        a.info('only in a')
        b.info('only in b')
    finally:
        close_logger(a)
        close_logger(b)
    assert 'only in a' in (tmp_path / 'a.log').read_text()
    assert 'only in a' not in (tmp_path / 'b.log').read_text()
    assert a.handlers == [] and b.handlers == []


def test_format_file_and_stderr(tmp_path, capsys):
    log_file = tmp_path / 'sub' / 'run.log'
    logger = get_logger('kiln', log_file=log_file)
    logger.info('hello')
    logger.debug('not shown at INFO')
    close_logger(logger)
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]), lines
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and LINE.match(err[0])


def test_file_mode_append_and_level(tmp_path):
    log_file = tmp_path / 'run.log'
    for mode, msg in (('w', 'first'), ('a', 'second')):
        logger = get_logger('kiln', log_file=log_file, file_mode=mode, log_level='WARNING')
        logger.info('filtered')
        logger.warning(msg)
        close_logger(logger)
    text = log_file.read_text()
    assert 'first' in text and 'second' in text and 'filtered' not in text
    assert ' - kiln - WARNING - first' in text


def test_error_lines_carry_location(tmp_path):
    log_file = tmp_path / 'run.log'
    logger = get_logger('kiln', log_file=log_file)
    logger.error('boom')
    close_logger(logger)
    text = log_file.read_text()
    assert 'test_error_lines_carry_location' in text and 'test_logger.py' in text and 'boom' in text


def test_bad_arguments():
    with pytest.raises(ValueError, match='log_level'):
        get_logger('kiln', log_level='LOUD')
    with pytest.raises(ValueError, match='file_mode'):
        get_logger('kiln', file_mode='x')


def test_print_log(tmp_path, capsys):
    print_log('to stdout')
    print_log('dropped', logger='silent')
    print_log('current falls back to print', logger='current')
    assert capsys.readouterr().out.splitlines() == ['to stdout', 'current falls back to print']
    logger = get_logger('kiln', log_file=tmp_path / 'x.log')
    print_log('via logger', logger=logger, level=logging.WARNING)
    close_logger(logger)
    assert ' - kiln - WARNING - via logger' in (tmp_path / 'x.log').read_text()
    with pytest.raises(TypeError):
        print_log('x', logger=3)
