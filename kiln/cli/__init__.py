"""The ``kiln`` command line (``kiln = kiln.cli.main:main``); one module per sub-command."""
from .main import build_parser, main

__all__ = ['build_parser', 'main']
