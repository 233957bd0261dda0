"""``kiln registry [NAME]``: list the registries, or the names registered in one of them."""
from __future__ import annotations

import argparse

from ._common import CLIError

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``registry`` sub-command."""
    p = subparsers.add_parser('registry', help='list registries and their registered names',
                              description='Without NAME: every root registry and how many names it holds. '
                                          'With NAME (e.g. MODELS or hook): the names and the objects they map to.')
    p.add_argument('name', nargs='?', help='registry variable or registry name, e.g. MODELS, HOOKS, model')
    p.add_argument('--scope', default=None,
                   help="also import this scope's package first, e.g. kiln.det (alias mmdet)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from kiln.registry import format_registries, init_default_scope
    if args.scope:
        init_default_scope(args.scope)
    try:
        text = format_registries(args.name)
    except KeyError as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
    print(text, end='' if text.endswith('\n') else '\n')
    return 0
