"""Compare how kiln and MMEngine read a corpus of OpenMMLab config files.

Loads every ``.py`` config under a directory (by default MMDetection 3.3.0's packaged configs,
``mmdet/.mim/configs`` of the wheel) with ``kiln.config.Config.fromfile`` and with
``mmengine.config.Config.fromfile`` and reports, per file, ``equal``, ``differ`` (with the key
paths whose values differ) or ``raise`` (with the exception of the side that raised).

MMEngine is never imported into kiln's environment: each side is read in its own process
(``--mmengine-python`` is an interpreter of a separate environment that has ``mmengine``
installed), which writes the normalised values as JSON.

Setup and run (from the repository root)::

    pip download mmdet==3.3.0 --no-deps -d /tmp/mmdet_whl
    (cd /tmp/mmdet_whl && unzip -q mmdet-3.3.0-py3-none-any.whl 'mmdet/.mim/configs/*')
    python3.11 -m venv /tmp/mmenv && /tmp/mmenv/bin/pip install mmengine==0.10.7
    .venv/bin/python tools/compare_mmdet_configs.py /tmp/mmdet_whl/mmdet/.mim/configs \\
        --mmengine-python /tmp/mmenv/bin/python

Normalisation (representation only): ConfigDict and dict are both plain mappings; tuples stay
tuples (``{"__tuple__": [...]}``), so a list where MMEngine has a tuple is a difference; classes,
functions and lazy imports are compared by their dotted import path. Nothing else is normalised:
key order inside a dict does not matter (MMEngine compares dicts as dicts too), values do.

Files on which *both* readers raise are ``raise (both)`` and are not counted among the files
compared: they need packages that are not installed (``mmpretrain::`` bases) or are not loadable
configs at all; the summary lists them.

Exit status: 0 when every compared file is equal, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import types
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


# ------------------------------------------------------------------------------------------------
# worker side: runs inside one environment, reads every file with one library, writes JSON
def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {'__dict__': {str(k): _normalise(v) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {'__tuple__': [_normalise(v) for v in value]}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {'__float__': repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    module = getattr(value, '__module__', None) or getattr(value, 'module', None)
    name = getattr(value, '__qualname__', None) or getattr(value, '__name__', None)
    if type(value).__name__ == 'LazyObject':
        return {'__object__': str(value)}
    if isinstance(value, types.FunctionType) and module not in sys.modules:
        # a function defined by the config file itself: its __module__ is whatever name the
        # reader executed the file under (kiln: '__kiln_config__', MMEngine: None)
        return {'__config_function__': name}
    if name is not None:
        return {'__object__': f'{module}.{name}'}
    return {'__repr__': repr(value)}


def _worker(library: str, root: str, files: list[str], out: str) -> None:
    if library == 'kiln':
        sys.path.insert(0, REPO)
        from kiln.config import Config
    else:
        from mmengine.config import Config
    results = {}
    for rel in files:
        path = os.path.join(root, rel)
        try:
            cfg = Config.fromfile(path, import_custom_modules=False)
            results[rel] = {'ok': _normalise(cfg.to_dict())}
        except BaseException as e:  # noqa: BLE001 - reported per file
            if isinstance(e, KeyboardInterrupt):
                raise
            results[rel] = {'error': f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'}
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(results, f)


# ------------------------------------------------------------------------------------------------
# parent side
def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and len(a) == 1:
        kind = next(iter(a))
        if kind == '__dict__':
            da, db = a[kind], b[kind]
            for key in sorted(set(da) | set(db)):
                sub = f'{path}.{key}' if path else key
                if key not in da:
                    out.append(f'{sub} (only in mmengine)')
                elif key not in db:
                    out.append(f'{sub} (only in kiln)')
                else:
                    _diff(da[key], db[key], sub, out)
            return
        if kind == '__tuple__':
            _diff(a[kind], b[kind], path, out)
            return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f'{path}.{i}', out)
        return
    if a != b or type(a) is not type(b):
        out.append(f'{path or "<root>"}: kiln {_short(a)} != mmengine {_short(b)}')


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + '...'


def _collect(root: str) -> list[str]:
    files = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith('.py'):
                files.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(files)


def _run_worker(python: str, library: str, root: str, files: list[str], env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, 'files.json')
        out = os.path.join(tmp, 'out.json')
        with open(listing, 'w', encoding='utf-8') as f:
            json.dump(files, f)
        # run from a neutral directory so that neither side sees the other's package by cwd
        subprocess.run([python, os.path.abspath(__file__), '--worker', library, root, listing, out],
                       check=True, cwd=tmp, env=env)
        with open(out, encoding='utf-8') as f:
            return json.load(f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='?', default='/tmp/mmdet_whl/mmdet/.mim/configs',
                        help='directory of config files (MMDetection: mmdet/.mim/configs)')
    parser.add_argument('--mmengine-python', default='/tmp/mmenv/bin/python',
                        help='python interpreter of an environment with mmengine installed')
    parser.add_argument('--kiln-python', default=sys.executable,
                        help='python interpreter of kiln\'s environment (default: this one)')
    parser.add_argument('--only', nargs='*', default=None,
                        help='compare only these files (paths relative to CONFIGS)')
    parser.add_argument('--verbose', '-v', action='store_true',
                        help='list every differing key path (default: the first 8 per file)')
    parser.add_argument('--worker', nargs=4, metavar=('LIB', 'ROOT', 'FILES', 'OUT'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        library, root, listing, out = args.worker
        with open(listing, encoding='utf-8') as f:
            _worker(library, root, json.load(f), out)
        return 0

    root = os.path.abspath(args.configs)
    if not os.path.isdir(root):
        parser.error(f'config directory not found: {root} (see the module docstring for setup)')
    files = args.only or _collect(root)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    kiln = _run_worker(args.kiln_python, 'kiln', root, files, env)
    mme = _run_worker(args.mmengine_python, 'mmengine', root, files, env)

    equal, differ, raised, both = [], [], [], []
    for rel in files:
        k, m = kiln[rel], mme[rel]
        if 'error' in k and 'error' in m:
            both.append(rel)
            print(f'raise (both)  {rel}\n    kiln:     {k["error"]}\n    mmengine: {m["error"]}')
        elif 'error' in k or 'error' in m:
            raised.append(rel)
            side, err = ('kiln', k['error']) if 'error' in k else ('mmengine', m['error'])
            print(f'raise         {rel}\n    {side}: {err}')
        else:
            paths: list[str] = []
            _diff(k['ok'], m['ok'], '', paths)
            if paths:
                differ.append(rel)
                shown = paths if args.verbose else paths[:8]
                print(f'differ        {rel}')
                for p in shown:
                    print(f'    {p}')
                if len(shown) < len(paths):
                    print(f'    ... {len(paths) - len(shown)} more')
            else:
                equal.append(rel)
    compared = len(files) - len(both)
    print(f'\n{len(files)} files, {len(both)} raise in both readers (not compared), '
          f'{compared} compared: {len(equal)} equal, {len(differ)} differ, {len(raised)} raise')
    print(f'RESULT {len(equal)}/{compared} equal')
    return 0 if len(equal) == compared else 1


if __name__ == '__main__':
    sys.exit(main())
