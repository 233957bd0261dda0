"""Suite-wide test settings.

The suite runs as two pytest-xdist workers on a 2-core machine: one intra-op thread per worker avoids
oversubscription, which otherwise makes convolution-heavy tests several times slower.
"""
import sys
from pathlib import Path

import pytest
import torch

# Shared test helpers (tests/test_runner/toy.py, recorder.py) import as `test_runner.*` from any test directory.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Every test starts with one intra-op thread, whatever an earlier test in this worker set: results of
    in-process runs must equal those of subprocesses (which use one thread), bit for bit."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    yield
