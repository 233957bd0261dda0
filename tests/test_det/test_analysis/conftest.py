import pytest

from test_det.test_analysis.analysis_data import bccd_records


@pytest.fixture(scope='session')
def bccd_test() -> list[dict]:
    return bccd_records('test')
