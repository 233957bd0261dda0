"""Config object: access, text, pretty_text, dump, copy/pickle, merge_from_dict."""
import copy
import pickle
import textwrap
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import pytest

from kiln.config import Config, ConfigDict

DETECTOR = dict(
    default_scope='kiln.det',
    model=dict(type='RetinaNet', backbone=dict(type='ResNet', depth=50, out_indices=(1, 2, 3),
                                               init_cfg=None),
               bbox_head=dict(type='RetinaHead', num_classes=3, anchor_generator=dict(
                   type='AnchorGenerator', ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]))),
    train_dataloader=dict(batch_size=2, dataset=dict(type='VOCDataset', pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(1000, 600), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')])),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)),
    param_scheduler=[dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500)],
    classes=('RBC', 'WBC', 'Platelets'),
    resume=False, load_from=None, tiny=1e-12, big=float('inf'), neg=-3, label='a "quoted" \'s\'',
    weird_keys={1: 'one', 'with space': 2, 'class': 3},
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip('\n'), encoding='utf-8')
    return path


def test_attribute_and_item_access_and_assignment():
    cfg = Config(dict(test_int=1, test_list=[1, 2, 3], test_dict=dict(key1='value1')))
    assert cfg.test_int == cfg['test_int'] == 1
    cfg.test_int = 2
    cfg['test_list'][1] = 3
    cfg.new = dict(a=dict(b=1))
    assert cfg['test_int'] == 2 and cfg.test_list == [1, 3, 3]
    assert isinstance(cfg.new, ConfigDict) and cfg.new.a.b == 1
    assert cfg.get('missing', 'dflt') == 'dflt'
    assert sorted(cfg.keys()) == ['new', 'test_dict', 'test_int', 'test_list']
    assert 'new' in cfg and len(cfg) == 4 and set(iter(cfg)) == set(cfg.keys())
    del cfg.new
    del cfg['test_int']
    assert set(cfg) == {'test_list', 'test_dict'}
    cfg.update(dict(test_dict=dict(key2=2)))  # ConfigDict.update merges
    assert cfg.test_dict.to_dict() == dict(key1='value1', key2=2)
    assert isinstance(cfg, Mapping) and dict(**cfg)['test_list'] == [1, 3, 3]


def test_missing_attribute_names_the_key():
    cfg = Config(dict(model=dict(type='X')))
    with pytest.raises(AttributeError, match="no key 'optimizer'"):
        cfg.optimizer
    with pytest.raises(AttributeError, match="no key 'backbone'"):
        cfg.model.backbone
    with pytest.raises(KeyError):
        cfg['optimizer']


def test_constructor_validation_and_reserved_keys():
    with pytest.raises(TypeError, match='expects a dict'):
        Config([1, 2])
    with pytest.raises(KeyError, match="'filename' is a reserved key"):
        Config(dict(filename='x'))
    with pytest.raises(TypeError, match='top-level keys must be strings'):
        Config({1: 2})
    cfg = Config(dict(a=1))
    with pytest.raises(AttributeError, match='read-only'):
        cfg.text = 'x'
    assert cfg.filename is None and cfg.text == '' and repr(cfg) == "Config (path: None): {'a': 1}"


def test_to_dict_returns_plain_builtins():
    cfg = Config(DETECTOR)
    plain = cfg.to_dict()
    assert plain == DETECTOR
    assert type(plain['model']) is dict and type(plain['train_dataloader']['dataset']['pipeline'][0]) is dict
    plain['model']['type'] = 'changed'
    assert cfg.model.type == 'RetinaNet'


def test_pretty_text_is_python_that_reloads_equal(tmp_path):
    cfg = Config(DETECTOR)
    text = cfg.pretty_text
    compile(text, 'pretty', 'exec')
    assert "model = dict(" in text and "'with space': 2" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    reloaded = Config.fromstring(text, '.py')
    assert reloaded.to_dict() == cfg.to_dict()
    out = tmp_path / 'dump.py'
    cfg.dump(out)
    assert Config.fromfile(out).to_dict() == DETECTOR


def test_pretty_text_of_inherited_file_has_no_base(tmp_path):
    write(tmp_path, 'base.py', "optimizer = dict(type='SGD', lr=0.02, momentum=0.9)\n")
    cfg = Config.fromfile(write(tmp_path, 'r50.py', "_base_ = 'base.py'\nmodel = dict(depth=50)\n"))
    assert cfg.pretty_text == ("optimizer = dict(type='SGD', lr=0.02, momentum=0.9)\n"
                               "model = dict(depth=50)\n")


JSONABLE = {k: v for k, v in DETECTOR.items() if k not in ('big', 'weird_keys')}


def _lists(value):
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


@pytest.mark.parametrize('ext', ['.py', '.json', '.yaml', '.yml'])
def test_dump_reloads_equal(tmp_path, ext):
    cfg = Config(JSONABLE)
    out = tmp_path / f'dumped{ext}'
    assert cfg.dump(out) is None
    reloaded = Config.fromfile(out).to_dict()
    if ext == '.py':
        assert reloaded == JSONABLE
    else:  # JSON and YAML have no tuples
        assert reloaded == _lists(JSONABLE)


def test_dump_without_file_uses_the_source_format(tmp_path):
    cfg = Config.fromfile(write(tmp_path, 'c.yaml', 'a: 1\nb: [x, y]\n'))
    assert cfg.dump() == 'a: 1\nb:\n- x\n- y\n'
    assert Config(dict(a=1, b=2)).dump() == 'a = 1\nb = 2\n'
    with pytest.raises(ValueError, match=r"out\.txt.*unsupported extension"):
        cfg.dump(tmp_path / 'out.txt')


def test_classes_are_dumped_as_importable_paths(tmp_path):
    cfg = Config(dict(model=dict(type=OrderedDict, fn=textwrap.dedent, obj=object())))
    text = cfg.pretty_text
    assert "type='collections.OrderedDict'" in text and "fn='textwrap.dedent'" in text
    assert "obj='<object object at" in text
    cfg.dump(tmp_path / 'x.json')
    assert Config.fromfile(tmp_path / 'x.json').model.type == 'collections.OrderedDict'


def test_text_of_dict_config_and_file(tmp_path):
    path = write(tmp_path, 'a.py', 'x = 1  # comment kept\n')
    cfg = Config.fromfile(path)
    assert cfg.text == f'# {path}\nx = 1  # comment kept\n'
    assert Config(dict(x=1), filename=path).text == 'x = 1  # comment kept\n'


def test_deepcopy_copy_and_pickle(tmp_path):
    cfg = Config.fromfile(write(tmp_path, 'a.py', "model = dict(backbone=dict(depth=50), l=[1])\n"))
    deep = copy.deepcopy(cfg)
    deep.model.backbone.depth = 101
    deep.model.l.append(2)
    assert cfg.model.backbone.depth == 50 and cfg.model.l == [1]
    assert deep.filename == cfg.filename and deep.text == cfg.text
    shallow = copy.copy(cfg)
    shallow.other = 1
    assert 'other' not in cfg and shallow.model is cfg.model
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored.to_dict() == cfg.to_dict() and restored.filename == cfg.filename
    assert isinstance(restored.model.backbone, ConfigDict) and restored.text == cfg.text


def test_merge_from_dict_with_list_indices():
    cfg = Config(copy.deepcopy(DETECTOR))
    cfg.merge_from_dict({
        'model.backbone.depth': 101,
        'train_dataloader.dataset.pipeline.2.scale': (640, 640),
        'train_dataloader.dataset.pipeline.-1.meta_keys': ['img_id'],
        'optim_wrapper.optimizer': dict(lr=0.1),
        'model.bbox_head.anchor_generator': dict(_delete_=True, type='Other'),
        'brand.new.key': 1,
        'param_scheduler.0': dict(type='ConstantLR'),
    })
    assert cfg.model.backbone.depth == 101
    assert cfg.train_dataloader.dataset.pipeline[2].to_dict() == dict(
        type='Resize', scale=(640, 640), keep_ratio=True)
    assert cfg.train_dataloader.dataset.pipeline[4].meta_keys == ['img_id']
    assert cfg.optim_wrapper.optimizer.to_dict() == dict(type='SGD', lr=0.1, momentum=0.9,
                                                         weight_decay=1e-4)
    assert cfg.model.bbox_head.anchor_generator.to_dict() == dict(type='Other')
    assert cfg.brand.new.key == 1
    assert cfg.param_scheduler[0].type == 'ConstantLR' and cfg.param_scheduler[0].end == 500


@pytest.mark.parametrize('key,exc,message', [
    ('train_dataloader.dataset.pipeline.9.scale', KeyError,
     r"train_dataloader\.dataset\.pipeline\.9 does not exist \('train_dataloader\.dataset\.pipeline' has 5 items"),
    ('model.backbone.depth.x', KeyError, r"'model\.backbone\.depth' is of type int .*no key 'x'"),
    ('train_dataloader.dataset.pipeline.first', KeyError,
     r"'train_dataloader\.dataset\.pipeline' is of type list, so 'first' must be an integer"),
    ('classes.0', TypeError, r"'classes' is a tuple"),
    ('model..depth', KeyError, 'invalid key'),
])
def test_merge_from_dict_errors_name_the_path(key, exc, message):
    cfg = Config(copy.deepcopy(DETECTOR))
    with pytest.raises(exc, match=message):
        cfg.merge_from_dict({key: 1})


def test_merge_from_dict_list_keys_can_be_disabled():
    cfg = Config(copy.deepcopy(DETECTOR))
    with pytest.raises(KeyError, match='allow_list_keys=True'):
        cfg.merge_from_dict({'param_scheduler.0.end': 1}, allow_list_keys=False)
    with pytest.raises(TypeError, match='expects a dict'):
        cfg.merge_from_dict([('a', 1)])


def test_merge_from_dict_does_not_alias_options():
    options = {'model.extra': dict(a=[1])}
    cfg = Config(dict(model=dict()))
    cfg.merge_from_dict(options)
    cfg.model.extra.a.append(2)
    assert options == {'model.extra': dict(a=[1])}


def test_diff_is_a_unified_diff_of_pretty_texts(tmp_path):
    a = write(tmp_path, 'a.py', "model = dict(depth=50)\nlr = 0.1\nname = 'x'\n")
    b = write(tmp_path, 'b.py', "_base_ = 'a.py'\nmodel = dict(depth=101)\n")
    diff = Config.diff(a, b)
    assert diff.splitlines() == [
        f'--- {a}', f'+++ {b}', '@@ -1,3 +1,3 @@',
        '-model = dict(depth=50)', '+model = dict(depth=101)', ' lr = 0.1', " name = 'x'"]
    assert Config.diff(Config.fromfile(a), dict(model=dict(depth=50), lr=0.1, name='x')) == ''
    assert Config.diff(dict(a=1), dict(a=2)).startswith('--- <cfg1>\n+++ <cfg2>\n')


def test_config_attaches_key_paths_to_the_dicts_read_from_it():
    from kiln.config import key_path
    cfg = Config(DETECTOR)
    assert key_path(cfg.model) == 'model'
    assert key_path(cfg['model']['bbox_head'].anchor_generator) == 'model.bbox_head.anchor_generator'
    assert key_path(cfg.get('train_dataloader').dataset.pipeline[2]) == \
        'train_dataloader.dataset.pipeline.2'
    assert key_path(copy.deepcopy(cfg).model.backbone) == 'model.backbone'
    assert key_path(pickle.loads(pickle.dumps(cfg)).model.backbone) == 'model.backbone'
