import sys
import textwrap

import pytest

from kiln.config import Config
from kiln.config.custom_imports import import_custom_modules


def _module(tmp_path, name, body):
    (tmp_path / f'{name}.py').write_text(textwrap.dedent(body))


def test_custom_imports_register_modules_at_load_time(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'ci_my_module', raising=False)
    _module(tmp_path, 'ci_my_module', """
        from kiln.registry import Registry
        OPTIMIZERS = Registry('custom optimizer', scope='ci_my_module')

        @OPTIMIZERS.register_module()
        class CustomOptim:
            def __init__(self, lr):
                self.lr = lr
    """)
    cfg_file = tmp_path / 'custom_imports.py'
    cfg_file.write_text("custom_imports = dict(imports=['ci_my_module'], allow_failed_imports=False)\n"
                        "optimizer = dict(type='CustomOptim', lr=0.1)\n")
    cfg = Config.fromfile(cfg_file)
    module = sys.modules['ci_my_module']
    optim = module.OPTIMIZERS.build(cfg.optimizer)
    assert isinstance(optim, module.CustomOptim) and optim.lr == 0.1
    monkeypatch.delitem(sys.modules, 'ci_my_module')


def test_failed_import_raises_naming_module_and_file(tmp_path):
    cfg_file = tmp_path / 'c.py'
    cfg_file.write_text("custom_imports = dict(imports=['kiln_no_such_module_xyz'])\n")
    with pytest.raises(ImportError, match=r"c\.py: custom_imports could not import 'kiln_no_such_module_xyz'"):
        Config.fromfile(cfg_file)
    assert Config.fromfile(cfg_file, import_custom_modules=False).custom_imports.imports == [
        'kiln_no_such_module_xyz']


def test_allow_failed_imports_warns(tmp_path):
    cfg_file = tmp_path / 'c.py'
    cfg_file.write_text("custom_imports = dict(imports='kiln_no_such_module_xyz', "
                        "allow_failed_imports=True)\nx = 1\n")
    with pytest.warns(UserWarning, match='kiln_no_such_module_xyz'):
        assert Config.fromfile(cfg_file).x == 1


def test_bad_custom_imports_values():
    with pytest.raises(TypeError, match='my.py: custom_imports must be dict'):
        import_custom_modules(['json'], 'my.py')
    with pytest.raises(TypeError, match='custom_imports.imports must be'):
        import_custom_modules(dict(imports=[1]), 'my.py')
    with pytest.raises(KeyError, match=r"unknown keys \['import'\]"):
        import_custom_modules({'import': []})
    assert [m.__name__ for m in import_custom_modules(dict(imports=['json', 'textwrap']))] == [
        'json', 'textwrap']
