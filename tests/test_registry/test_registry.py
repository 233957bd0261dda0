"""Registry: registration, lookup, scopes, parents/children, locations, container protocol."""
import sys
import textwrap

import pytest

from kiln.registry import Registry


def test_register_as_decorator_call_and_list_of_names():
    acts = Registry('activation', scope='t_reg')

    @acts.register_module()
    class Sigmoid:
        pass

    @acts.register_module(name=['Relu', 'ReLU'])
    class ReLU:
        pass

    def softmax():
        return 'softmax'

    assert acts.register_module(module=softmax) is softmax
    assert acts.register_module(name='sm')(softmax) is softmax
    assert acts.module_dict == {'Sigmoid': Sigmoid, 'Relu': ReLU, 'ReLU': ReLU,
                                'softmax': softmax, 'sm': softmax}
    assert acts.get('ReLU') is ReLU and acts.get('Relu') is ReLU
    assert acts.get('Missing') is None
    assert len(acts) == 5 and list(acts) == ['Sigmoid', 'Relu', 'ReLU', 'softmax', 'sm']
    assert 'Sigmoid' in acts and 'Missing' not in acts and 3 not in acts


def test_duplicate_names_need_force():
    reg = Registry('thing', scope='t_dup')

    class A:
        pass

    class B:
        pass

    reg.register_module(name='X', module=A)
    reg.register_module(name='X', module=A)  # same object again is fine
    with pytest.raises(KeyError, match=r"'X' is already registered in registry 'thing' \(scope 't_dup'\) as .*A"):
        reg.register_module(name='X', module=B)
    reg.register_module(name='X', force=True, module=B)
    assert reg.get('X') is B


def test_redefinition_with_same_qualified_name_replaces():
    reg = Registry('thing', scope='t_redef')
    namespace = {'__name__': 'notebook_cell', 'reg': reg}
    source = '@reg.register_module()\nclass Net:\n    pass\n'
    exec(source, namespace)
    first = reg.get('Net')
    exec(source, namespace)  # e.g. a re-run notebook cell or an importlib.reload
    assert reg.get('Net') is not first and reg.get('Net') is namespace['Net']


def test_register_rejects_bad_input():
    reg = Registry('thing', scope='t_bad')
    with pytest.raises(TypeError, match="only classes and functions can be registered, got 3"):
        reg.register_module(module=3)
    with pytest.raises(TypeError, match='name must be a str'):
        reg.register_module(name=5)
    with pytest.raises(TypeError, match='force must be a bool'):
        reg.register_module(force='yes')
    with pytest.raises(TypeError, match='expects a name'):
        reg.get(3)
    with pytest.raises(TypeError, match='non-empty string'):
        Registry('')
    with pytest.raises(TypeError, match='parent must be a Registry'):
        Registry('x', parent=object())


def test_scope_is_inferred_without_frame_inspection():
    # from the locations ...
    assert Registry('located', locations=['mmalpha.models', 'other.pkg']).scope == 'mmalpha'
    # ... else from the module of the first object registered (a registry and its classes live
    # in the same package), '__main__' while it is empty
    reg = Registry('inferred')
    assert reg.scope == '__main__'
    reg.register_module(module=Registry)
    assert reg.scope == 'kiln'
    namespace = {'__name__': 'mmalpha.models.builder', 'Registry': Registry}
    exec("reg = Registry('x')\n@reg.register_module()\nclass Net: pass\n", namespace)
    assert namespace['reg'].scope == 'mmalpha'
    # the scope stays what it was first inferred as
    namespace['reg'].register_module(name='Other', module=test_scope_is_inferred_without_frame_inspection)
    assert namespace['reg'].scope == 'mmalpha'


def test_child_without_scope_joins_parent_once_it_registers():
    root = Registry('model', scope='t_unscoped_root')
    child = Registry('model', parent=root)
    assert root.children == {}
    namespace = {'__name__': 'mmgamma.models', 'child': child}
    exec("@child.register_module()\nclass GammaNet: pass\n", namespace)
    assert root.children == {'mmgamma': child}
    assert root.get('mmgamma.GammaNet') is namespace['GammaNet']


@pytest.fixture
def tree():
    """root (scope 'mmengine_like') with children 'mmalpha' and 'mmbeta'."""
    root = Registry('model', scope='t_root')
    alpha = Registry('model', parent=root, scope='mmalpha')
    beta = Registry('model', parent=root, scope='mmbeta')

    @root.register_module()
    class RReLU:
        pass

    @alpha.register_module()
    class LogSoftmax:
        pass

    @alpha.register_module(name='RReLU')
    class AlphaRReLU:
        pass

    return root, alpha, beta


def test_child_searches_itself_then_parent(tree):
    root, alpha, beta = tree
    assert alpha.get('LogSoftmax').__name__ == 'LogSoftmax'
    assert alpha.get('RReLU').__name__ == 'AlphaRReLU'  # own entry first
    assert beta.get('RReLU').__name__ == 'RReLU'  # falls back to the parent
    assert root.get('LogSoftmax') is None  # parents do not search children
    assert alpha.parent is root and root.children == {'mmalpha': alpha, 'mmbeta': beta}
    assert alpha.root is root and beta.build_func is root.build_func


def test_scope_prefixed_names(tree):
    root, alpha, beta = tree
    assert alpha.get('t_root.RReLU').__name__ == 'RReLU'  # parent's module despite own RReLU
    assert beta.get('mmalpha.LogSoftmax').__name__ == 'LogSoftmax'  # sibling with prefix
    assert root.get('mmalpha.RReLU').__name__ == 'AlphaRReLU'
    assert 'mmalpha.LogSoftmax' in beta and 'mmalpha.Nothing' not in beta
    assert beta.get('LogSoftmax') is None
    assert Registry.split_scope_key('mmalpha.LogSoftmax') == ('mmalpha', 'LogSoftmax')
    assert Registry.split_scope_key('ResNet') == (None, 'ResNet')


def test_duplicate_child_scope_is_rejected(tree):
    root, _, _ = tree
    with pytest.raises(KeyError, match="already has a child with scope 'mmalpha'"):
        Registry('model', parent=root, scope='mmalpha')


def test_kiln_scope_aliases_and_subpackages_resolve_to_kiln_registry():
    reg = Registry('model', scope='kiln')

    @reg.register_module()
    class RetinaNet:
        pass

    for name in ('kiln.RetinaNet', 'mmengine.RetinaNet', 'mmdet.RetinaNet', 'kiln.det.RetinaNet'):
        assert reg.get(name) is RetinaNet, name


def test_dotted_import_path_fallback():
    reg = Registry('anything', scope='t_import')
    from collections import OrderedDict
    assert reg.get('collections.OrderedDict') is OrderedDict
    assert reg.get('textwrap.dedent') is textwrap.dedent
    assert reg.get('collections.NoSuchThing') is None
    assert reg.get('no_such_pkg_xyz.Thing') is None
    assert reg.get('os.path') is None  # modules are not buildable
    assert 'collections.OrderedDict' not in reg  # `in` only looks at registries


def _make_location(tmp_path, monkeypatch, name, body):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / f'{name}.py').write_text(textwrap.dedent(body))


def test_locations_are_imported_lazily_once(tmp_path, monkeypatch):
    reg = Registry('lazy', scope='t_lazy', locations=['t_lazy_location'])
    monkeypatch.setitem(sys.modules, 't_lazy_holder', type(sys)('t_lazy_holder'))
    sys.modules['t_lazy_holder'].REG = reg
    sys.modules['t_lazy_holder'].COUNT = 0
    _make_location(tmp_path, monkeypatch, 't_lazy_location', """
        import t_lazy_holder
        t_lazy_holder.COUNT += 1

        @t_lazy_holder.REG.register_module()
        class LazyThing:
            def __init__(self, size=1):
                self.size = size
    """)
    assert 't_lazy_location' not in sys.modules  # creating the registry imports nothing
    assert "locations=['t_lazy_location'] (not imported yet)" in repr(reg)
    assert reg.module_dict == {}  # raw view, no import
    assert 'LazyThing' in reg  # first `in` imports
    assert sys.modules['t_lazy_holder'].COUNT == 1
    assert reg.build(dict(type='LazyThing', size=3)).size == 3
    assert len(reg) == 1 and list(reg) == ['LazyThing']
    assert sys.modules['t_lazy_holder'].COUNT == 1  # imported once
    assert 'imported)' in repr(reg)


def test_location_import_happens_on_build_and_for_parents(tmp_path, monkeypatch):
    parent = Registry('p', scope='t_parent_loc', locations=['t_parent_location'])
    child = Registry('c', parent=parent, scope='t_child_loc')
    monkeypatch.setitem(sys.modules, 't_parent_holder', type(sys)('t_parent_holder'))
    sys.modules['t_parent_holder'].REG = parent
    _make_location(tmp_path, monkeypatch, 't_parent_location', """
        import t_parent_holder

        @t_parent_holder.REG.register_module()
        def make(x=1):
            return ('made', x)
    """)
    assert child.build(dict(type='make', x=2)) == ('made', 2)


def test_failing_location_raises_with_module_name(tmp_path, monkeypatch):
    _make_location(tmp_path, monkeypatch, 't_broken_location', "raise RuntimeError('boom')\n")
    reg = Registry('broken', scope='t_broken', locations=['t_broken_location'])
    for _ in range(2):  # never silently marked as imported
        with pytest.raises(ImportError, match=r"registry 'broken' \(scope 't_broken'\) could not "
                                              r"import its location 't_broken_location': RuntimeError: boom"):
            reg.get('Anything')
    missing = Registry('missing', scope='t_missing', locations=['t_no_such_module_xyz'])
    with pytest.raises(ImportError, match="'t_no_such_module_xyz'"):
        'X' in missing


def test_empty_registry_is_truthy_without_importing():
    reg = Registry('empty', scope='t_empty', locations=['t_never_imported_xyz'])
    assert bool(reg) is True


def test_repr_is_a_table():
    reg = Registry('activation', scope='t_repr')

    @reg.register_module()
    class Sigmoid:
        pass

    @reg.register_module(name='LongerName')
    def fn():
        pass

    text = repr(reg)
    lines = text.splitlines()
    assert lines[0] == "Registry(name='activation', scope='t_repr', 2 modules)"
    assert lines[1].split() == ['Name', 'Object']
    assert lines[2].split() == ['LongerName', f'{__name__}.test_repr_is_a_table.<locals>.fn']
    assert lines[3].split()[0] == 'Sigmoid'


def test_custom_build_func_receives_registry():
    calls = []

    def build_activation(cfg, registry, *args, **kwargs):
        cfg = dict(cfg)
        cls = registry.get(cfg.pop('type'))
        calls.append(cls.__name__)
        return cls(*args, **kwargs, **cfg)

    reg = Registry('activation', build_func=build_activation, scope='t_build_func')

    @reg.register_module()
    class Tanh:
        def __init__(self, scale=1):
            self.scale = scale

    obj = reg.build(dict(type='Tanh'), scale=2)
    assert obj.scale == 2 and calls == ['Tanh']
    child = Registry('activation', parent=reg, scope='t_build_func_child')
    assert child.build_func is build_activation
