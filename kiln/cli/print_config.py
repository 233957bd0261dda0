"""``kiln print-config CONFIG``: print the fully resolved config (bases merged, overrides applied)."""
from __future__ import annotations

import argparse

from ._common import add_cfg_options, load_config

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``print-config`` sub-command."""
    p = subparsers.add_parser('print-config', help='print the resolved config',
                              description='Print the config with its _base_ files merged and --cfg-options '
                                          'applied, as Python source.')
    p.add_argument('config', help='config file')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    print(load_config(args.config, args.cfg_options, command='print-config').pretty_text)
    return 0
