"""The rich progress display: drawn on a terminal, absent otherwise (plain log lines only)."""
import io
import re

from rich.console import Console

from kiln.config import Config
from kiln.logging.progress import ProgressHook, configure_progress, progress_enabled, track
from kiln.runner import Runner
from test_runner.toy import runner_kwargs


def _tty():
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def _pipe():
    return Console(file=io.StringIO(), force_terminal=False, width=120)


def _plain(console):
    return re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '', console.file.getvalue())


def test_track_renders_on_terminal_only():
    tty = _tty()
    assert list(track(range(7), description='scan', console=tty)) == list(range(7))
    out = _plain(tty)
    assert 'scan' in out and '7/7' in out and 'it/s' in out and 'eta' in out

    pipe = _pipe()
    assert list(track(iter(range(5)), description='scan', console=pipe)) == list(range(5))
    assert pipe.file.getvalue() == ''
    # explicit switches win over the terminal check
    off = _tty()
    assert list(track(range(3), console=off, enabled=False)) == [0, 1, 2] and off.file.getvalue() == ''
    assert progress_enabled(True, _pipe()) and not progress_enabled(None, _pipe())


def test_track_without_length_counts_up():
    tty = _tty()
    assert sum(track((i for i in range(4)), description='frames', console=tty)) == 6
    assert '4' in _plain(tty) and 'frames' in _plain(tty)


def _run_val(tmp_path, console, capsys):
    hook = ProgressHook(console=console)
    kwargs = runner_kwargs(tmp_path, max_epochs=1, custom_hooks=[hook], log_level='INFO')
    kwargs['default_hooks'] = dict(logger=dict(type='LoggerHook', interval=2))
    runner = Runner(**kwargs)
    capsys.readouterr()
    metrics = runner.val()
    runner.close()
    return runner, metrics, capsys.readouterr()


def test_val_bar_on_terminal_and_log_lines_above_it(tmp_path, capsys):
    tty = _tty()
    runner, metrics, captured = _run_val(tmp_path, tty, capsys)
    out = _plain(tty)
    n = len(runner.val_dataloader)
    assert f'{n}/{n}' in out and 'val' in out
    # while the bar is up, the runner's console log lines are printed through the same console, above it
    assert re.search(r'Epoch\(val\) \[\d+\]\[2/\d+\]', out)
    assert 'Epoch(val)' not in captured.err
    log = (tmp_path / runner.timestamp / f'{runner.timestamp}.log').read_text()
    assert re.search(r'Epoch\(val\) \[\d+\]\[2/\d+\]', log)  # the log file keeps every line
    assert 'accuracy' in metrics


def test_val_without_terminal_is_plain_log_lines(tmp_path, capsys):
    pipe = _pipe()
    runner, _, captured = _run_val(tmp_path, pipe, capsys)
    assert pipe.file.getvalue() == ''
    assert re.search(r' - kiln - INFO - Epoch\(val\) \[\d+\]\[2/\d+\]', captured.err)  # MMEngine-format lines
    handler_streams = [h.stream for h in runner.logger.handlers]
    assert all(not type(s).__name__.startswith('_Console') for s in handler_streams)


def test_progress_is_a_default_runner_hook_and_switches_off(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path / 'a'))
    assert [type(h).__name__ for h in runner.hooks].count('ProgressHook') == 1
    runner = Runner(**runner_kwargs(tmp_path / 'b', default_hooks=dict(progress=None)))
    assert 'ProgressHook' not in [type(h).__name__ for h in runner.hooks]
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook'), dict(type='ProgressHook')]))
    configure_progress(cfg)  # on: nothing to add, the Runner has it
    assert cfg.custom_hooks == [dict(type='EMAHook'), dict(type='ProgressHook')] and 'default_hooks' not in cfg
    configure_progress(cfg, enabled=False)  # --no-progress: the default and a custom one removed
    assert cfg.default_hooks == dict(progress=None) and cfg.custom_hooks == [dict(type='EMAHook')]
    env_off = Config(dict(env_cfg=dict(progress=False), default_hooks=dict(logger=dict(type='LoggerHook'))))
    configure_progress(env_off)
    assert env_off.default_hooks == dict(logger=dict(type='LoggerHook'), progress=None)


def test_track_batches_of_frames_advance_by_their_length():
    """`kiln infer`'s use: batches of images / video frames, the bar counting frames (total known or not)."""
    tty = _tty()
    batches = [[0, 1], [2, 3], [4]]
    assert list(track(iter(batches), total=5, description='cells.mp4', console=tty, advance=len)) == batches
    assert re.search(r'cells\.mp4.*5/5', _plain(tty))
    unknown = _tty()  # a container that does not give its frame count: no total, the count still goes up
    assert list(track(iter(batches), total=None, description='clip', console=unknown, advance=len)) == batches
    assert re.search(r'clip.*\b5\b', _plain(unknown)) and '5/5' not in _plain(unknown)
    piped = _pipe()  # not a terminal: nothing drawn
    assert list(track(iter(batches), total=5, console=piped, advance=len)) == batches and piped.file.getvalue() == ''
