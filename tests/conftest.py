"""Suite-wide test settings.

The suite runs as two pytest-xdist workers on a 2-core machine: one intra-op thread per worker avoids
oversubscription, which otherwise makes convolution-heavy tests several times slower.
"""
import sys
from pathlib import Path

import torch

# Shared test helpers (tests/test_runner/toy.py, recorder.py) import as `test_runner.*` from any test directory.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

torch.set_num_threads(1)
