import sys
from pathlib import Path

import torch

# Shared test helpers live in tests/test_runner (toy.py, recorder.py); make them importable in any import mode.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

# The test machine's cores are shared: one intra-op thread avoids oversubscription (10x faster here).
torch.set_num_threads(1)
