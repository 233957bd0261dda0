"""The ``kiln`` console script: ``kiln {train,test,print-config,registry} ...``."""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from kiln.registry import NotRegisteredError

from . import eval_watch, print_config, publish, registries, test, train
from ._common import CLIError, describe_error

__all__ = ['build_parser', 'main']


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: the engine's sub-commands (train, test, print-config, registry, publish) and those of
    installed toolboxes (see :func:`plugin_commands`; only the one named in ``argv`` is imported)."""
    parser = argparse.ArgumentParser(prog='kiln', description='kiln: train and evaluate models from configs.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for module in (train, test, print_config, registries, publish, eval_watch):
        module.add_parser(subparsers)
    requested = next((a for a in (argv or []) if not a.startswith('-')), None)
    for name, target in plugin_commands().items():
        if name == requested:
            importlib.import_module(target).add_parser(subparsers)
        else:  # listed in `kiln --help` without importing the toolbox
            subparsers.add_parser(name, help=f'(from {target.rsplit(".", 1)[0]}; kiln {name} --help)',
                                  add_help=False)
    return parser


def plugin_commands() -> dict[str, str]:
    """``{command name: module}`` of the sub-commands toolboxes declare in the ``kiln.cli`` entry-point group
    (kiln.det's are in pyproject.toml: ``infer = "kiln.det.cli.infer"``...). Each module defines
    ``add_parser(subparsers)``. The engine names no toolbox, and ``kiln --help`` imports none of them.
    """
    return {ep.name: ep.value for ep in sorted(entry_points(group='kiln.cli'), key=lambda e: e.name)}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the sub-command; returns the exit status (0 success,
    2 usage / config error reported on stderr without a traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        print(f'kiln {args.command}: error: {e}', file=sys.stderr)
        return 2
    except NotRegisteredError as e:  # a misspelt `type` met while building (message names the key path)
        print(f'kiln {args.command}: error: {describe_error(e)}', file=sys.stderr)
        return 2


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
