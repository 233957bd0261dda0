"""LazyObject: placeholders for the imports of pure-Python configs."""
import copy
import pickle
import sys

import pytest

from kiln.config import LazyObject


def test_attribute_access_chains_and_equality_uses_the_full_path():
    torch = LazyObject('torch')
    relu = torch.nn.ReLU
    assert relu == LazyObject('torch', 'nn.ReLU') == LazyObject('torch.nn', 'ReLU')
    assert relu == LazyObject('torch.nn.ReLU')
    assert relu != LazyObject('torch.nn', 'GELU') and relu != 'torch.nn.ReLU'
    assert len({relu, LazyObject('torch.nn', 'ReLU')}) == 1
    assert repr(relu) == '<lazy torch.nn.ReLU>'
    with pytest.raises(AttributeError):
        torch._private  # noqa: B018
    with pytest.raises(AttributeError, match='cannot set'):
        torch.x = 1


def test_build_imports_module_attribute_and_submodule():
    assert LazyObject('collections', 'OrderedDict').build() is __import__('collections').OrderedDict
    assert LazyObject('os').path.join.build() is __import__('os').path.join
    # `import xml` then `xml.dom.minidom`: the submodule is imported on demand
    sys.modules.pop('xml.dom.minidom', None)
    assert LazyObject('xml', 'dom.minidom').build().__name__ == 'xml.dom.minidom'


def test_build_errors_name_the_path_and_the_config():
    with pytest.raises(ImportError, match=r"c\.py: cannot import 'kiln_no_such_module\.X' .*"
                                          r"no module named 'kiln_no_such_module'"):
        LazyObject('kiln_no_such_module', 'X', source='c.py').build()
    with pytest.raises(ImportError, match=r"'collections' has no attribute or submodule 'Nope'"):
        LazyObject('collections', 'Nope').build()


def test_openmmlab_paths_fall_back_to_kiln():
    hook = LazyObject('mmengine.hooks', 'CheckpointHook').build()
    assert hook.__module__.startswith('kiln.hooks')
    with pytest.raises(ImportError, match="cannot import 'mmengine.hooks.NoSuchHook'"):
        LazyObject('mmengine.hooks', 'NoSuchHook').build()


def test_copy_pickle_and_call():
    lazy = LazyObject('torch.optim', 'SGD', source='cfg.py')
    assert copy.copy(lazy) is lazy and copy.deepcopy(lazy) is lazy
    again = pickle.loads(pickle.dumps(lazy))
    assert again == lazy and again._source == 'cfg.py'
    with pytest.raises(TypeError, match=r'cfg\.py: torch\.optim\.SGD was imported lazily'):
        lazy(lr=0.1)
    with pytest.raises(TypeError, match='dotted module name'):
        LazyObject('')
