import sys
from pathlib import Path

# The shared tiny-model helpers live in tests/test_runner/toy.py: make ``test_runner`` importable.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
