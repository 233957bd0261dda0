"""build_from_cfg: building classes/functions from config dicts, and its error messages."""
import pytest

from kiln.config import Config, ConfigDict
from kiln.registry import Registry, build_from_cfg


@pytest.fixture
def models():
    reg = Registry('model', scope='t_build')

    @reg.register_module()
    class ResNet:
        def __init__(self, depth, num_stages=4, *, style='pytorch', init_cfg=None):
            self.depth, self.num_stages, self.style, self.init_cfg = depth, num_stages, style, init_cfg

    @reg.register_module()
    class Flexible:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    @reg.register_module()
    class Exploding:
        def __init__(self, value):
            raise TypeError(f'value must be positive, got {value}')

    @reg.register_module()
    class Wrapper:
        def __init__(self, inner):
            self.inner = reg.build(inner)

    @reg.register_module()
    def make_pair(a, b=2):
        return (a, b)

    return reg


def test_builds_classes_and_calls_functions(models):
    net = build_from_cfg(dict(type='ResNet', depth=50, style='caffe'), models)
    assert (type(net).__name__, net.depth, net.num_stages, net.style) == ('ResNet', 50, 4, 'caffe')
    assert models.build(dict(type='make_pair', a=1)) == (1, 2)


def test_type_may_be_a_class_or_function(models):
    resnet = models.get('ResNet')
    assert build_from_cfg(dict(type=resnet, depth=18), models).depth == 18
    assert build_from_cfg({'type': lambda x: x * 2, 'x': 4}, models) == 8


def test_default_args_fill_missing_keys_only(models):
    cfg = dict(type='ResNet', depth=50)
    net = models.build(cfg, default_args=dict(depth=101, init_cfg=dict(type='Pretrained')))
    assert net.depth == 50 and net.init_cfg == dict(type='Pretrained')
    net = build_from_cfg(dict(depth=34), models, default_args=dict(type='ResNet'))
    assert net.depth == 34
    assert cfg == dict(type='ResNet', depth=50)  # the input is not modified


def test_accepts_config_dict_and_config(models):
    assert models.build(ConfigDict(type='ResNet', depth=18)).depth == 18
    assert models.build(Config(dict(type='Flexible', a=1))).kwargs == dict(a=1)


def test_scope_key_selects_registry(models):
    child = Registry('model', parent=models, scope='t_build_child')

    @child.register_module(name='ResNet')
    class ChildResNet:
        def __init__(self, depth):
            self.depth = depth

    sibling = Registry('model', parent=models, scope='t_build_sibling')
    assert type(sibling.build(dict(type='ResNet', depth=1, _scope_='t_build_child'))).__name__ \
        == 'ChildResNet'
    assert type(sibling.build(dict(type='ResNet', depth=1))).__name__ == 'ResNet'
    # a scope that does not have the name falls back to the registry's own search
    assert sibling.build(dict(type='make_pair', a=0, _scope_='t_build_child')) == (0, 2)


def test_unknown_type_names_registry_scopes_and_close_matches(models):
    child = Registry('model', parent=models, scope='t_build_kid')
    with pytest.raises(KeyError) as info:
        child.build(dict(type='Resnet', depth=50))
    message = str(info.value)
    assert "'Resnet' is not registered in the 'model' registry" in message
    assert "searched 'model' (scope 't_build_kid') -> 'model' (scope 't_build')" in message
    assert "Did you mean: 'ResNet'?" in message
    with pytest.raises(KeyError, match=r"Registered: Exploding, Flexible, ResNet, Wrapper, make_pair"):
        models.build(dict(type='Zzzzzz'))
    with pytest.raises(KeyError, match='The registry is empty'):
        Registry('empty', scope='t_empty_build').build(dict(type='X'))


def test_bad_cfg_types(models):
    with pytest.raises(TypeError, match="cfg must be a dict with a 'type' key, got list"):
        build_from_cfg([('type', 'ResNet')], models)
    with pytest.raises(KeyError, match=r"the config has no 'type' key \(keys: 'depth'\)"):
        build_from_cfg(dict(depth=50), models)
    with pytest.raises(TypeError, match="'type' must be a registered name \\(str\\) or a class/function, got int"):
        build_from_cfg(dict(type=3), models)
    with pytest.raises(TypeError, match='default_args must be a dict or None, got list'):
        build_from_cfg(dict(type='ResNet'), models, default_args=[1])
    with pytest.raises(TypeError, match='registry must be a Registry'):
        build_from_cfg(dict(type='ResNet'), 'models')


def test_bad_argument_names_type_argument_and_accepted_parameters(models):
    with pytest.raises(TypeError) as info:
        models.build(dict(type='ResNet', dpeth=50))
    message = str(info.value)
    assert "cannot build 'ResNet'" in message and "from the 'model' registry" in message
    assert "unexpected argument 'dpeth' (did you mean 'depth'?)" in message
    assert "missing required argument(s) 'depth'" in message
    assert message.endswith('Accepted parameters: depth, num_stages, style, init_cfg')
    with pytest.raises(TypeError, match=r"'make_pair'.*missing required argument\(s\) 'a'"):
        models.build(dict(type='make_pair'))


def test_type_error_inside_constructor_is_kept_with_a_note(models):
    with pytest.raises(TypeError, match='value must be positive, got -1') as info:
        models.build(dict(type='Exploding', value=-1))
    assert info.value.__notes__ == ["(while building 'Exploding' from the 'model' registry)"]


def test_nested_build_errors_keep_inner_message(models):
    with pytest.raises(KeyError, match="'Nope' is not registered") as info:
        models.build(dict(type='Wrapper', inner=dict(type='Nope')))
    assert "(while building 'Wrapper' from the 'model' registry)" in info.value.__notes__


def test_lazy_type_and_lazy_arguments_are_imported_when_built(models):
    from collections import OrderedDict

    from kiln.config import LazyObject
    built = models.build(dict(type=LazyObject('collections', 'OrderedDict'), a=1))
    assert built == OrderedDict(a=1)
    flexible = models.build(dict(type='Flexible', factory=LazyObject('collections.OrderedDict'),
                                 many=[LazyObject('collections', 'deque'), 2]))
    assert flexible.kwargs['factory'] is OrderedDict
    assert flexible.kwargs['many'] == [__import__('collections').deque, 2]


def test_lazy_openmmlab_type_is_found_in_the_registry(models):
    from kiln.config import LazyObject
    net = models.build(dict(type=LazyObject('mmdet.models.backbones', 'ResNet'), depth=18))
    assert type(net) is models.get('ResNet') and net.depth == 18


def test_lazy_import_errors_name_the_path():
    from kiln.config import LazyObject
    reg = Registry('model', scope='t_build_lazy')

    @reg.register_module()
    class Outer:
        def __init__(self, inner):
            self.inner = reg.build(inner)

    cfg = Config(dict(model=dict(type='Outer', inner=dict(type=LazyObject('kiln_nope_mod', 'X')))))
    with pytest.raises(ImportError, match=r"^model\.inner: cannot build the lazily imported type "
                                          r"'kiln_nope_mod\.X' from the 'model' registry"):
        reg.build(cfg.model)
    cfg = Config(dict(model=dict(type='Outer', inner=dict(type='Outer',
                                                          inner=LazyObject('kiln_nope_mod.Y')))))
    with pytest.raises(ImportError, match=r"^model\.inner: argument 'inner': .*kiln_nope_mod\.Y"):
        reg.build(cfg.model)
