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


def test_log_to_files_writes_the_file_only_and_describe_exception(tmp_path, capsys):
    from kiln.logging import close_logger, describe_exception, get_logger, log_to_files
    logger = get_logger('kiln-files-only', log_file=str(tmp_path / 'run.log'))
    try:
        try:
            raise ValueError('bad box')
        except ValueError as e:
            e.add_note('in ann.json, image 3')
            text = describe_exception(e)
        assert text.startswith('ValueError: bad box (raised at ') and text.endswith('\n  in ann.json, image 3')
        log_to_files(logger, logging.ERROR, f'build failed: {text}')
        log_to_files(logger, logging.DEBUG, 'below the level: dropped')
    finally:
        close_logger(logger)
    content = (tmp_path / 'run.log').read_text()
    assert 'ERROR' in content and 'build failed: ValueError: bad box' in content and 'image 3' in content
    assert 'dropped' not in content
    captured = capsys.readouterr()
    assert 'bad box' not in captured.out + captured.err  # not on the console stream
