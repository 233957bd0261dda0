"""Config.fromfile: formats, _base_ inheritance, substitutions and error messages."""
import os
import re
import textwrap
from pathlib import Path

import pytest

from kiln.config import Config, ConfigDict

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip('\n'), encoding='utf-8')
    return path


SAME = dict(test_int=1, test_list=[1, 2, 3], test_dict=dict(key1='value1', key2=0.1))


@pytest.mark.parametrize('name,text', [
    ('c.py', "test_int = 1\ntest_list = [1, 2, 3]\ntest_dict = dict(key1='value1', key2=0.1)\n"),
    ('c.json', '{"test_int": 1, "test_list": [1, 2, 3], "test_dict": {"key1": "value1", "key2": 0.1}}'),
    ('c.yaml', 'test_int: 1\ntest_list: [1, 2, 3]\ntest_dict:\n  key1: "value1"\n  key2: 0.1\n'),
    ('c.yml', 'test_int: 1\ntest_list: [1, 2, 3]\ntest_dict: {key1: value1, key2: 0.1}\n'),
])
def test_three_formats_load_the_same_values(tmp_path, name, text):
    cfg = Config.fromfile(write(tmp_path, name, text))
    assert cfg.to_dict() == SAME
    assert isinstance(cfg.test_dict, ConfigDict)
    assert cfg.test_dict.key2 == 0.1
    assert cfg.filename.endswith(name)


def test_python_config_keeps_only_plain_variables(tmp_path):
    path = write(tmp_path, 'c.py', """
        import os
        from collections import OrderedDict
        def helper(x):
            return x * 2
        __private = 1
        _scope_note = 'kept'
        size = helper(4)
        kind = OrderedDict
        model = dict(type=OrderedDict, layers=[helper(i) for i in range(3)])
    """)
    cfg = Config.fromfile(path)
    assert set(cfg) == {'_scope_note', 'size', 'model'}
    assert cfg.size == 8
    assert cfg.model.type is __import__('collections').OrderedDict
    assert cfg.model.layers == [0, 2, 4]


def test_python_config_functions_classes_and_comprehensions_see_config_names(tmp_path):
    write(tmp_path, 'base.py', "widths = [1, 2]\n")
    path = write(tmp_path, 'c.py', """
        _base_ = 'base.py'
        scale = 2
        def f(x):
            return x * scale
        vals = [f(i) for i in range(3)]
        class Holder:
            n = scale + 1
        m = Holder.n
        doubled = [w * scale for w in _base_.widths]
        del scale
    """)
    cfg = Config.fromfile(path)
    assert cfg.to_dict() == dict(widths=[1, 2], vals=[0, 2, 4], m=3, doubled=[2, 4])


def test_base_chain_four_levels_with_list_and_str_bases(tmp_path):
    write(tmp_path, '_base_/datasets/voc.py', """
        data_root = 'data/bccd/'
        train_dataloader = dict(batch_size=2, dataset=dict(type='VOCDataset', pipeline=[1, 2]))
    """)
    write(tmp_path, '_base_/schedules/sgd.py', """
        optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
        gpu_ids = [0, 1]
    """)
    write(tmp_path, '_base_/models/retina.py', """
        _base_ = '../datasets/voc.py'
        model = dict(type='RetinaNet', backbone=dict(type='ResNet', depth=50), init_cfg=None)
    """)
    write(tmp_path, 'level3.py', """
        _base_ = ['_base_/models/retina.py', '_base_/schedules/sgd.py']
        optimizer = dict(lr=0.01)
        gpu_ids = [0]
        train_dataloader = dict(dataset=dict(pipeline=[3]))
    """)
    path = write(tmp_path, 'sub/level4.py', """
        _base_ = '../level3.py'
        model = dict(backbone=dict(depth=18), init_cfg=dict(type='Pretrained'))
        optimizer = dict(_delete_=True, type='Adam', lr=0.001)
    """)
    cfg = Config.fromfile(path)
    assert cfg.model.to_dict() == dict(type='RetinaNet', backbone=dict(type='ResNet', depth=18),
                                       init_cfg=dict(type='Pretrained'))
    assert cfg.optimizer.to_dict() == dict(type='Adam', lr=0.001)  # _delete_ replaced it
    assert cfg.gpu_ids == [0]  # lists replace
    assert cfg.train_dataloader.to_dict() == dict(
        batch_size=2, dataset=dict(type='VOCDataset', pipeline=[3]))
    assert cfg.data_root == 'data/bccd/'
    assert '_base_' not in cfg and '_delete_' not in str(cfg.to_dict())
    # text holds every file, bases first
    assert cfg.text.index('voc.py') < cfg.text.index('retina.py') < cfg.text.index('level4.py')
    assert "optimizer = dict(_delete_=True, type='Adam', lr=0.001)" in cfg.text


def test_later_base_overrides_earlier_and_merges_dicts(tmp_path):
    write(tmp_path, 'a.py', "opt = dict(lr=1, wd=2)\nx = 1\n")
    write(tmp_path, 'b.py', "opt = dict(lr=3)\nx = 2\n")
    cfg = Config.fromfile(write(tmp_path, 'c.py', "_base_ = ['a.py', 'b.py']\n"))
    assert cfg.to_dict() == dict(opt=dict(lr=3, wd=2), x=2)


def test_later_base_dict_of_another_type_replaces_the_earlier_one(tmp_path):
    # between the files of one _base_ list a dict naming another `type` replaces the earlier dict (nothing of the
    # other type's keys stays on it); the same type still merges key by key
    write(tmp_path, 'coco.py', "data = dict(dataset=dict(type='CocoDataset', ann_file='a.json', data_prefix=dict("
                               "img='x/'), pipeline=[1]), batch_size=2)\nmetric = dict(type='CocoMetric', "
                               "ann_file='a.json')\n")
    write(tmp_path, 'voc.py', "data = dict(dataset=dict(type='RepeatDataset', times=3, dataset=dict("
                              "type='VOCDataset')))\nmetric = dict(type='VOCMetric', eval_mode='11points')\n")
    cfg = Config.fromfile(write(tmp_path, 'c.py', "_base_ = ['coco.py', 'voc.py']\n"))
    assert cfg.to_dict() == dict(data=dict(dataset=dict(type='RepeatDataset', times=3, dataset=dict(
        type='VOCDataset')), batch_size=2), metric=dict(type='VOCMetric', eval_mode='11points'))
    cfg = Config.fromfile(write(tmp_path, 'd.py', "_base_ = ['voc.py', 'coco.py']\n"))
    assert cfg.data.dataset == dict(type='CocoDataset', ann_file='a.json', data_prefix=dict(img='x/'), pipeline=[1])
    assert cfg.metric == dict(type='CocoMetric', ann_file='a.json')
    # a child file over its bases keeps MMEngine's rule: merge whatever the type (_delete_=True to replace)
    cfg = Config.fromfile(write(tmp_path, 'e.py', "_base_ = 'coco.py'\nmetric = dict(type='VOCMetric')\n"))
    assert cfg.metric == dict(type='VOCMetric', ann_file='a.json')


def test_mixed_formats_inherit(tmp_path):
    write(tmp_path, 'base.yaml', 'model:\n  type: ResNet\n  depth: 50\nlr: 0.1\n')
    write(tmp_path, 'mid.json', '{"_base_": "base.yaml", "model": {"depth": 101}}')
    cfg = Config.fromfile(write(tmp_path, 'top.py', "_base_ = 'mid.json'\nlr = 0.2\n"))
    assert cfg.to_dict() == dict(model=dict(type='ResNet', depth=101), lr=0.2)


def test_dict_over_scalar_base_needs_delete(tmp_path):
    write(tmp_path, 'a.py', "scale = 4\n")
    path = write(tmp_path, 'b.py', "_base_ = 'a.py'\nscale = dict(w=1)\n")
    with pytest.raises(TypeError, match=r"b\.py.*'scale'.*_delete_"):
        Config.fromfile(path)
    path.write_text("_base_ = 'a.py'\nscale = dict(_delete_=True, w=1)\n")
    assert Config.fromfile(path).scale == dict(w=1)


# {{_base_.x}} and _base_ access ------------------------------------------------------------------
def test_base_reference_in_python(tmp_path):
    write(tmp_path, 'resnet50.py', """
        model = dict(type='ResNet', depth=50)
        pipeline = [dict(type='Load'), dict(type='Resize', scale=(1333, 800))]
    """)
    path = write(tmp_path, 'ref.py', """
        _base_ = ['resnet50.py']
        a = {{_base_.model}}
        b = '{{ _base_.model.depth }}'
        c = {{_base_.pipeline.1.scale}}
    """)
    cfg = Config.fromfile(path)
    assert cfg.a == dict(type='ResNet', depth=50)
    assert cfg.b == 50
    assert cfg.c == (1333, 800)


def test_python_base_variable_access_is_the_inherited_value(tmp_path):
    # MMEngine: `_base_` is the merged base dict itself; changing what `_base_.model` returns
    # changes the inherited `model` (the corpus relies on it: `_base_.train_cfg.val_interval = 2`)
    write(tmp_path, 'resnet50.py', "model = dict(type='ResNet', depth=50, stages=[1, 2])\n")
    path = write(tmp_path, 'modify.py', """
        _base_ = ['resnet50.py']
        a = _base_.model
        a.type = 'MobileNet'
        a.stages.append(3)
        b = _base_['model']['depth'] + 1
    """)
    cfg = Config.fromfile(path)
    assert cfg.a.to_dict() == dict(type='MobileNet', depth=50, stages=[1, 2, 3])
    assert cfg.model.to_dict() == dict(type='MobileNet', depth=50, stages=[1, 2, 3])
    assert cfg.b == 51


@pytest.mark.parametrize('name,text', [
    ('ref.json', '{"_base_": ["resnet50.py"], "a": "{{_base_.model}}", "b": {{_base_.model.depth}},'
                 ' "root": "{{_base_.root}}/train"}'),
    ('ref.yaml', '_base_: [resnet50.py]\na: {{_base_.model}}\nb: "{{_base_.model.depth}}"\n'
                 'root: "{{_base_.root}}/train"\n'),
])
def test_base_reference_in_json_and_yaml(tmp_path, name, text):
    write(tmp_path, 'resnet50.py', "model = dict(type='ResNet', depth=50)\nroot = 'data'\n")
    cfg = Config.fromfile(write(tmp_path, name, text))
    assert cfg.a == dict(type='ResNet', depth=50)
    assert cfg.b == 50
    assert cfg.root == 'data/train'


def test_unresolvable_base_reference_names_file_and_key(tmp_path):
    write(tmp_path, 'a.py', "model = dict(depth=50)\n")
    path = write(tmp_path, 'b.json', '{"_base_": "a.py", "x": "{{_base_.model.width}}"}')
    with pytest.raises(KeyError, match=r"b\.json.*_base_\.model\.width"):
        Config.fromfile(path)
    path = write(tmp_path, 'c.py', "_base_ = 'a.py'\nx = _base_.optimizer\n")
    with pytest.raises(AttributeError, match=r"c\.py.*_base_\.optimizer") as info:
        Config.fromfile(path)
    assert any('c.py' in note for note in info.value.__notes__)


# predefined and environment variables --------------------------------------------------------
def test_predefined_variables(tmp_path):
    write(tmp_path, 'base.py', "base_dir = '{{fileDirname}}'\n")
    path = write(tmp_path, 'exp_1.py', """
        _base_ = 'base.py'
        work_dir = './work_dirs/{{fileBasenameNoExtension}}'
        name = '{{ fileBasename }}'
        ext = '{{fileExtname}}'
        here = '{{fileDirname}}'
    """)
    cfg = Config.fromfile(path)
    assert cfg.work_dir == './work_dirs/exp_1'
    assert (cfg.name, cfg.ext) == ('exp_1.py', '.py')
    assert cfg.here == cfg.base_dir == str(tmp_path).replace('\\', '/')
    raw = Config.fromfile(path, use_predefined_variables=False)
    assert raw.work_dir == './work_dirs/{{fileBasenameNoExtension}}'


def test_predefined_variable_points_at_real_data(tmp_path):
    data_link = tmp_path / 'bccd'
    data_link.symlink_to(BCCD, target_is_directory=True)
    path = write(tmp_path, 'voc.yaml', "data_root: '{{fileDirname}}/bccd/'\n")
    cfg = Config.fromfile(path)
    assert (Path(cfg.data_root) / 'ImageSets' / 'Main' / 'train.txt').is_file()


def test_environment_variables(tmp_path, monkeypatch):
    path = write(tmp_path, 'env.py', """
        data_root = '{{$KILN_TEST_DATASET:/data/coco/}}'
        dataset = dict(ann_file=data_root + 'train.json')
        model = dict(bbox_head=dict(num_classes={{'$KILN_TEST_NUM_CLASSES:80'}}))
    """)
    monkeypatch.delenv('KILN_TEST_DATASET', raising=False)
    monkeypatch.delenv('KILN_TEST_NUM_CLASSES', raising=False)
    cfg = Config.fromfile(path)
    assert cfg.dataset.ann_file == '/data/coco/train.json'
    assert cfg.model.bbox_head.num_classes == 80
    monkeypatch.setenv('KILN_TEST_DATASET', '/new/path/')
    monkeypatch.setenv('KILN_TEST_NUM_CLASSES', '3')
    cfg = Config.fromfile(path)
    assert cfg.dataset.ann_file == '/new/path/train.json'
    assert cfg.model.bbox_head.num_classes == 3


def test_environment_variable_without_default_must_be_set(tmp_path, monkeypatch):
    monkeypatch.delenv('KILN_TEST_UNSET', raising=False)
    path = write(tmp_path, 'env.yaml', 'root: "{{$KILN_TEST_UNSET}}"\n')
    with pytest.raises(KeyError, match=r"env\.yaml.*KILN_TEST_UNSET"):
        Config.fromfile(path)
    monkeypatch.setenv('KILN_TEST_UNSET', 'x')
    assert Config.fromfile(path).root == 'x'


# errors ----------------------------------------------------------------------------------------
def test_python_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, 'bad.py', "a = 1\nb = dict(x=1,,)\n")
    with pytest.raises(SyntaxError, match=r'bad\.py, line 2') as info:
        Config.fromfile(path)
    assert info.value.lineno == 2 and info.value.filename.endswith('bad.py')


@pytest.mark.parametrize('name,text,line', [
    ('bad.json', '{\n  "a": 1,\n  "b": \n}', 4),
    ('bad.yaml', 'a: 1\nb: [1, 2\nc: 3\n', 3),
])
def test_json_yaml_syntax_error_names_file_and_line(tmp_path, name, text, line):
    with pytest.raises(SyntaxError, match=rf'{re.escape(name)}, line {line}'):
        Config.fromfile(write(tmp_path, name, text))


def test_runtime_error_in_python_config_is_annotated(tmp_path):
    path = write(tmp_path, 'boom.py', "a = 1\nb = undefined_name\n")
    with pytest.raises(NameError) as info:
        Config.fromfile(path)
    assert any('boom.py' in note for note in info.value.__notes__)


def test_missing_base_names_including_file(tmp_path):
    path = write(tmp_path, 'child.py', "_base_ = ['missing_base.py']\n")
    with pytest.raises(FileNotFoundError, match=r"child\.py, line 1: base config 'missing_base\.py' not found"):
        Config.fromfile(path)


def test_missing_file_and_bad_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        Config.fromfile(tmp_path / 'nope.py')
    with pytest.raises(ValueError, match=r"c\.toml.*unsupported"):
        Config.fromfile(write(tmp_path, 'c.toml', 'a = 1\n'))


def test_circular_inheritance_is_reported(tmp_path):
    write(tmp_path, 'a.py', "_base_ = 'b.py'\n")
    path = write(tmp_path, 'b.py', "_base_ = 'a.py'\n")
    with pytest.raises(ValueError, match=r'circular.*b\.py -> .*a\.py -> .*b\.py'):
        Config.fromfile(path)


def test_bad_base_value_and_unsupported_styles(tmp_path):
    with pytest.raises(TypeError, match=r"c\.py, line 2: _base_ must be a path or a list of paths, got 3"):
        Config.fromfile(write(tmp_path, 'c.py', "x = 1\n_base_ = 3\n"))
    write(tmp_path, 'a.py', 'a = 1\n')
    with pytest.raises(ValueError, match=r"twice\.py, line 2: _base_ is assigned twice"):
        Config.fromfile(write(tmp_path, 'twice.py', "_base_ = 'a.py'\n_base_ = 'a.py'\n"))
    with pytest.raises(TypeError, match=r"d\.json: _base_ must be a path"):
        Config.fromfile(write(tmp_path, 'd.json', '{"_base_": 3}'))
    with pytest.raises(FileNotFoundError, match=r"e\.py, line 1: base config 'mmdet::_base_/x\.py' not found"):
        Config.fromfile(write(tmp_path, 'e.py', "_base_ = 'mmdet::_base_/x.py'\n"))
    with pytest.raises(FileNotFoundError, match=r"f\.py: base config `from \.nope import \.\.\.` not found"):
        Config.fromfile(write(tmp_path, 'f.py', "from kiln.config import read_base\n"
                                                "with read_base():\n    from .nope import *\n"))
    assert Config.fromfile(write(tmp_path, 'g.py', 'a = 1\n'), lazy_import=True).a == 1
    with pytest.raises(TypeError, match=r'h\.yaml: a config file must hold a mapping'):
        Config.fromfile(write(tmp_path, 'h.yaml', '- 1\n- 2\n'))


def test_empty_yaml_is_empty_config(tmp_path):
    assert Config.fromfile(write(tmp_path, 'e.yaml', '# nothing\n')).to_dict() == {}


def test_fromstring_loads_dumped_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, 'base.py', 'a = dict(x=1)\n')
    cfg = Config.fromstring("_base_ = 'base.py'\na = dict(y=2)\n", '.py')
    assert cfg.to_dict() == dict(a=dict(x=1, y=2))
    assert Config.fromstring('a: 1\n', 'yaml').a == 1
    with pytest.raises(SyntaxError, match=r'<string>, line 1'):
        Config.fromstring('a = (\n', '.py')


def test_path_objects_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, 'cfgs/base.py', 'a = 1\n')
    write(tmp_path, 'cfgs/top.py', "_base_ = './base.py'\nb = 2\n")
    cfg = Config.fromfile(os.path.join('cfgs', 'top.py'))
    assert cfg.to_dict() == dict(a=1, b=2)
    assert cfg.filename == os.path.join('cfgs', 'top.py')


def test_repository_configs_load_and_round_trip():
    configs = sorted((Path(__file__).parents[2] / 'configs').rglob('*.py'))
    assert configs, 'the repository ships configs'
    for path in configs:
        cfg = Config.fromfile(path)
        assert len(cfg) > 0, path
        assert Config.fromstring(cfg.pretty_text, '.py').to_dict() == cfg.to_dict(), path
