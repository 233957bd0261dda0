import subprocess
import sys
from pathlib import Path

import kiln.registry as registry_pkg
from kiln.registry import MODELS, ROOT_REGISTRIES, Registry

EXPECTED_LOCATIONS = {
    'MODELS': ['kiln.model'], 'WEIGHT_INITIALIZERS': ['kiln.model'],
    'DATASETS': ['kiln.dataset'], 'TRANSFORMS': ['kiln.dataset'], 'DATA_SAMPLERS': ['kiln.dataset'],
    'FUNCTIONS': ['kiln.dataset'], 'HOOKS': ['kiln.hooks'], 'LOOPS': ['kiln.runner'],
    'RUNNERS': ['kiln.runner'], 'OPTIMIZERS': ['kiln.optim'], 'OPTIM_WRAPPERS': ['kiln.optim'],
    'OPTIM_WRAPPER_CONSTRUCTORS': ['kiln.optim'], 'PARAM_SCHEDULERS': ['kiln.optim'],
    'METRICS': ['kiln.evaluator'], 'EVALUATOR': ['kiln.evaluator'],
    'VISBACKENDS': ['kiln.visualization'], 'VISUALIZERS': ['kiln.visualization'],
    'LOG_PROCESSORS': ['kiln.logging'],
}


def test_root_registries_and_locations():
    for name, locations in EXPECTED_LOCATIONS.items():
        reg = getattr(registry_pkg, name)
        assert isinstance(reg, Registry) and reg.locations == locations, name
        assert reg.scope == 'kiln' and reg.parent is None and ROOT_REGISTRIES[name] is reg
    assert set(EXPECTED_LOCATIONS) <= set(ROOT_REGISTRIES)
    assert len({id(r) for r in ROOT_REGISTRIES.values()}) == len(ROOT_REGISTRIES)
    assert MODELS.name == 'model'


def test_importing_registry_does_not_import_torch_or_locations():
    code = ("import sys, kiln.config, kiln.registry; "
            "bad = [m for m in ('torch', 'kiln.model', 'kiln.det', 'yaml') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], cwd=Path(__file__).parents[2], check=True)
