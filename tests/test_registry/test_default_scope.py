import sys

import pytest

from kiln.registry import SCOPE_ALIASES, init_default_scope


def test_nothing_to_import_for_kiln_scopes():
    assert init_default_scope(None) is None
    assert init_default_scope('kiln') is None
    assert init_default_scope('mmengine') is None
    assert SCOPE_ALIASES == {'mmdet': 'kiln.det', 'mmengine': 'kiln'}


def test_imports_the_module_a_scope_names(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 't_scope_pkg', raising=False)
    (tmp_path / 't_scope_pkg.py').write_text('LOADED = True\n')
    monkeypatch.setitem(SCOPE_ALIASES, 'mmfake', 't_scope_pkg')
    assert init_default_scope('mmfake') == 't_scope_pkg'
    assert sys.modules['t_scope_pkg'].LOADED
    assert init_default_scope('t_scope_pkg') == 't_scope_pkg'


def test_unknown_scope_says_what_was_tried():
    with pytest.raises(ImportError) as info:
        init_default_scope('mmunknown')
    message = str(info.value)
    assert "default_scope 'mmunknown': could not find the module 'mmunknown'" in message
    assert "'mmdet' -> 'kiln.det'" in message
    with pytest.raises(ImportError, match="could not find the module 'kiln.nothing_here'"):
        init_default_scope('kiln.nothing_here')
    with pytest.raises(TypeError, match='default_scope must be a string or None'):
        init_default_scope(3)


def test_errors_inside_the_scope_module_propagate(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 't_scope_broken', raising=False)
    (tmp_path / 't_scope_broken.py').write_text('import t_dependency_missing_xyz\n')
    with pytest.raises(ModuleNotFoundError, match='t_dependency_missing_xyz') as info:
        init_default_scope('t_scope_broken')
    assert "default_scope 't_scope_broken'" in info.value.__notes__[0]
