import subprocess
import sys
from pathlib import Path

from kiln.config import Config
from kiln.config.pretty import format_python, to_serializable

ODD = {
    'one_tuple': (1,), 'empty': ([], (), {}, set()), 'a_set': {3}, 'nested': [[[1, (2, [3])]]],
    'long_list': list(range(60)), 'floats': (0.1, 1e-20, float('-inf')), 'cplx': 1 + 2j,
    'data': b'\x00bytes', 'keys': {('t', 1): 'tuple key', None: 'none', 'for': 'keyword'},
    'my-key': 'not an identifier',
}


def test_odd_values_round_trip():
    text = format_python(ODD)
    assert "globals()['my-key'] = 'not an identifier'" in text
    assert 'one_tuple = (1,)' in text and 'set()' in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert Config.fromstring(text, '.py').to_dict() == ODD


def test_long_values_break_over_lines():
    text = format_python({'model': {'layers': [dict(type='Conv', channels=256, kernel=3)] * 4}})
    assert text.splitlines()[0] == 'model = dict('
    assert "        dict(type='Conv', channels=256, kernel=3)," in text.splitlines()


def test_to_serializable():
    assert to_serializable({'a': (1, [2, (3,)]), 'b': {4}, 'c': Path}) == {
        'a': [1, [2, [3]]], 'b': [4], 'c': 'pathlib.Path'}


def test_importing_config_does_not_import_torch():
    root = Path(__file__).parents[2]
    code = ("import sys, kiln.config; cfg = kiln.config.Config(dict(a=1)); cfg.pretty_text; "
            "assert 'torch' not in sys.modules and 'yaml' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, '-c', code], cwd=root, check=True)
