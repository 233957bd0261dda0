import copy
import pickle

import pytest

from kiln.config import ConfigDict


def test_nested_dicts_become_config_dicts_also_in_lists():
    cfg = ConfigDict(pipeline=[dict(type='Load'), (dict(type='A'), 1)], model=dict(head=dict(n=3)))
    assert cfg.model.head.n == 3
    assert isinstance(cfg.pipeline[0], ConfigDict) and cfg.pipeline[0].type == 'Load'
    assert isinstance(cfg.pipeline[1], tuple) and cfg.pipeline[1][0].type == 'A'
    cfg.extra = [dict(a=1)]
    assert cfg.extra[0].a == 1
    cfg['other'] = dict(b=dict(c=1))
    assert cfg.other.b.c == 1
    assert cfg.setdefault('new', dict(x=1)).x == 1


def test_lists_without_dicts_keep_identity():
    values = [1, 2, 3]
    cfg = ConfigDict(v=values)
    assert cfg.v is values


def test_missing_attribute_raises_attribute_error_naming_key():
    cfg = ConfigDict(a=1, b=2)
    with pytest.raises(AttributeError, match=r"no key 'c' \(available keys: 'a', 'b'\)"):
        cfg.c
    assert not hasattr(cfg, 'c')
    assert getattr(cfg, 'c', None) is None
    with pytest.raises(AttributeError, match="no key 'c'"):
        del cfg.c
    del cfg.a
    assert dict(cfg) == dict(b=2)


def test_method_names_cannot_be_set_as_attributes():
    cfg = ConfigDict()
    with pytest.raises(AttributeError, match=r"cannot set attribute 'items': it is a ConfigDict method"):
        cfg.items = 1
    cfg['items'] = 1
    assert cfg['items'] == 1


def test_update_merges_recursively_and_copy_is_shallow():
    cfg = ConfigDict(model=dict(backbone=dict(depth=50, style='pytorch')), lr=0.1)
    cfg.update(model=dict(backbone=dict(depth=101)), lr=0.2)
    assert cfg.to_dict() == dict(model=dict(backbone=dict(depth=101, style='pytorch')), lr=0.2)
    shallow = cfg.copy()
    assert type(shallow) is ConfigDict and shallow.model is cfg.model
    merged = cfg | dict(lr=0.3, extra=dict(a=1))
    assert merged.lr == 0.3 and merged.extra.a == 1 and cfg.lr == 0.2
    cfg |= dict(lr=0.4)
    assert cfg.lr == 0.4
    assert (dict(lr=1, z=2) | cfg).z == 2


def test_deepcopy_and_pickle_keep_type_and_values():
    cfg = ConfigDict(a=dict(b=[dict(c=1)]))
    for clone in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg))):
        assert clone == cfg and type(clone.a) is ConfigDict and clone.a.b[0].c == 1
        clone.a.b[0].c = 2
        assert cfg.a.b[0].c == 1


def test_to_dict_is_plain_and_deep():
    cfg = ConfigDict(a=dict(b=[dict(c=1)], t=(dict(d=2),)))
    plain = cfg.to_dict()
    assert plain == dict(a=dict(b=[dict(c=1)], t=(dict(d=2),)))
    assert type(plain['a']) is dict and type(plain['a']['b'][0]) is dict
    assert type(plain['a']['t'][0]) is dict


def test_dir_lists_keys():
    assert 'depth' in dir(ConfigDict(depth=50))


def test_update_with_delete_replaces_the_stored_dict():
    cfg = ConfigDict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9), other=1)
    cfg.update(dict(optimizer=dict(_delete_=True, type='Adam', lr=0.001)))
    assert cfg.optimizer == dict(type='Adam', lr=0.001)
    cfg.update(optimizer=dict(_delete_=False, betas=(0.9, 0.99)))
    assert cfg.optimizer == dict(type='Adam', lr=0.001, betas=(0.9, 0.99))


def test_reading_a_lazy_value_imports_it_but_iteration_does_not():
    from kiln.config import LazyObject
    lazy = LazyObject('collections', 'OrderedDict')
    cfg = ConfigDict(type=lazy, items=[1])
    real = __import__('collections').OrderedDict
    assert cfg.type is real and cfg['type'] is real and cfg.get('type') is real
    assert dict(cfg.items())['type'] is lazy and list(cfg.values())[0] is lazy
    # becoming a plain dict resolves it (code that copies configs with dict(cfg) gets real objects)
    assert dict(cfg)['type'] is real and {**cfg}['type'] is real
    assert (lambda **kw: kw['type'])(**cfg) is real
    assert ConfigDict(cfg).to_dict()['type'] is lazy and cfg.copy().to_dict()['type'] is lazy
    assert cfg.to_dict()['type'] is lazy and copy.deepcopy(cfg).to_dict()['type'] is lazy
    assert cfg.pop('type') is real and 'type' not in cfg
    assert cfg.get('type', 5) == 5


def test_key_paths_follow_reads_from_a_tagged_dict():
    from kiln.config import key_path, set_key_path
    cfg = set_key_path(ConfigDict(model=dict(head=dict(loss=dict(type='L'))),
                                  pipeline=[dict(type='A'), dict(type='B')]), '')
    assert key_path(cfg.model) == 'model'
    assert key_path(cfg.model.head.loss) == 'model.head.loss'
    assert key_path(cfg['pipeline'][1]) == 'pipeline.1'
    assert key_path(copy.deepcopy(cfg.model.head)) == 'model.head'
    assert key_path(cfg.model.copy()) == 'model'
    assert key_path(ConfigDict(a=1)) is None and key_path({'a': 1}) is None
