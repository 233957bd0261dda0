"""Toolbox sub-commands found through the ``kiln.cli`` entry-point group, imported only when they run."""
import importlib
import sys
import types
from importlib.metadata import EntryPoint

cli_main = importlib.import_module('kiln.cli.main')  # kiln.cli re-exports the function `main` under that name


def _fake_plugin(monkeypatch, calls):
    module = types.ModuleType('fake_kiln_plugin_cmd')

    def add_parser(subparsers):
        p = subparsers.add_parser('hello', help='say hello')
        p.add_argument('name')
        p.set_defaults(func=lambda args: calls.append(args.name) or 0)

    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, 'fake_kiln_plugin_cmd', module)
    eps = [EntryPoint(name='hello', value='fake_kiln_plugin_cmd', group='kiln.cli')]
    monkeypatch.setattr(cli_main, 'entry_points', lambda group: eps if group == 'kiln.cli' else [])
    return module


def test_plugin_command_runs_and_is_listed(monkeypatch, capsys):
    calls = []
    _fake_plugin(monkeypatch, calls)
    assert cli_main.main(['hello', 'world']) == 0
    assert calls == ['world']
    try:
        cli_main.main(['--help'])
    except SystemExit:
        pass
    assert 'hello' in capsys.readouterr().out


def test_other_commands_do_not_import_the_plugin(monkeypatch):
    imported = []
    monkeypatch.setattr(cli_main.importlib, 'import_module', lambda name: imported.append(name))
    eps = [EntryPoint(name='hello', value='not_importable_module_xyz', group='kiln.cli')]
    monkeypatch.setattr(cli_main, 'entry_points', lambda group: eps)
    parser = cli_main.build_parser(['print-config', 'x.py'])
    assert imported == [] and 'hello' in parser.format_help()
