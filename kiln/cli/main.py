"""The ``kiln`` console script: ``kiln {train,test,print-config,registry} ...``."""
from __future__ import annotations

import argparse
import sys

from kiln.registry import NotRegisteredError

from . import print_config, publish, registries, test, train
from ._common import CLIError, describe_error

__all__ = ['build_parser', 'main']


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per module (train, test, print-config, registry)."""
    parser = argparse.ArgumentParser(prog='kiln', description='kiln: train and evaluate models from configs.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for module in (train, test, print_config, registries, publish):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the sub-command; returns the exit status (0 success,
    2 usage / config error reported on stderr without a traceback)."""
    args = build_parser().parse_args(argv)
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
