"""Import-time weight: ``import kiln`` / ``import kiln.det`` / the CLI must not pull in heavy optional libraries.

Plotting, COCO evaluation and experiment-tracking libraries are imported where they are used (a hook, a metric,
a vis backend), so ``kiln train`` reaches its first iteration without paying for them. Each check runs in a fresh
interpreter (``sys.modules`` of the test process is shared with every other test).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ('matplotlib', 'pycocotools', 'faster_coco_eval', 'mlflow', 'tensorboard', 'torch.utils.tensorboard',
         'wandb', 'pandas', 'scipy', 'yaml')


def _loaded_after(statement: str) -> list[str]:
    code = (f'import sys, json\n{statement}\n'
            f'print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('statement', [
    'import kiln',
    'import kiln.det',
    'import importlib; importlib.import_module("kiln.cli.main").build_parser(["train"])',
])
def test_no_heavy_optional_imports(statement):
    assert _loaded_after(statement) == []


def test_kiln_alone_does_not_import_torch():
    # the engine package and its registries are plain Python until something is built
    code = 'import sys, kiln, kiln.registry; print("torch" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'


def test_checker_sees_a_heavy_import():
    # the check itself works: importing a heavy library directly is reported
    pytest.importorskip('matplotlib')
    assert 'matplotlib' in _loaded_after('import matplotlib')
