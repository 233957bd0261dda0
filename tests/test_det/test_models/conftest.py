"""Fixtures shared by the MMDetection parity tests (``test_parity_<family>.py``).

Each parity module sets ``FAMILY``, the folder of one reference model in ``shared/mmdet_refs`` (made with
MMDetection 3.3.0). The fixtures are module-scoped and read that folder through the references' own loader,
``mmref_io.py``: ``mmref`` (the loader module), ``ref_cfg`` (the reference config as a dict), ``refs`` (expected
predictions, losses and image metas) and ``ref_sd`` (the reference state dict).
"""
import sys
from pathlib import Path

import pytest

from test_det.test_models.mmdet_refs import REFS


def _family(request) -> Path:
    family = getattr(request.module, 'FAMILY', None)
    if family is None:
        raise RuntimeError(f'{request.module.__name__} uses the parity fixtures but sets no FAMILY folder')
    return family


@pytest.fixture(scope='module')
def mmref():
    sys.path.insert(0, str(REFS))
    try:
        import mmref_io
    finally:
        sys.path.remove(str(REFS))
    return mmref_io


@pytest.fixture(scope='module')
def ref_cfg(mmref, request):
    return mmref.load_config(str(_family(request)))


@pytest.fixture(scope='module')
def refs(mmref, request):
    return mmref.load_refs(str(_family(request)))


@pytest.fixture(scope='module')
def ref_sd(mmref, request):
    return mmref.load_state_dict(str(_family(request)))
