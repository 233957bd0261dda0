"""Detection sub-commands of the ``kiln`` console script (``kiln infer``, ``kiln export``...).

Each module defines ``add_parser(subparsers)`` and is declared in pyproject.toml's ``kiln.cli`` entry-point
group (``name = "kiln.det.cli.<module>"``); ``kiln.cli.main`` imports it only when that command runs.
"""
