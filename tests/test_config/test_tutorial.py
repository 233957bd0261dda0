"""Every example of MMEngine's Config tutorial, on kiln's own example files (tests/test_config/data/tutorial)."""
import argparse
import json
import sys
from pathlib import Path

import pytest
import yaml

from kiln.config import Config, ConfigDict, DictAction

DATA = Path(__file__).parent / 'data' / 'tutorial'
REPO_CONFIGS = Path(__file__).parents[2] / 'configs'


def load(name: str) -> Config:
    return Config.fromfile(DATA / name)


# reading ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['learn_read_config.py', 'learn_read_config.json',
                                  'learn_read_config.yml'])
def test_three_formats_read_the_same(name):
    cfg = load(name)
    assert cfg.to_dict() == dict(test_int=1, test_list=[1, 2, 3],
                                 test_dict=dict(key1='value1', key2=0.1))
    assert repr(cfg) == (f"Config (path: {DATA / name}): {{'test_int': 1, 'test_list': [1, 2, 3], "
                         "'test_dict': {'key1': 'value1', 'key2': 0.1}}")


def test_item_and_attribute_access_and_assignment():
    cfg = load('learn_read_config.py')
    assert (cfg.test_int, cfg.test_list, cfg.test_dict) == (1, [1, 2, 3], dict(key1='value1', key2=0.1))
    cfg.test_int = 2
    assert cfg['test_int'] == 2
    cfg['test_list'][1] = 3
    assert cfg.test_list == [1, 3, 3]
    assert isinstance(cfg.test_dict, ConfigDict) and cfg.test_dict.key1 == 'value1'


def test_config_builds_an_optimizer_through_the_registry():
    torch = pytest.importorskip('torch')
    from kiln.registry import OPTIMIZERS
    cfg = load('config_sgd.py')
    model = torch.nn.Conv2d(1, 1, 1)
    cfg.optimizer.params = model.parameters()
    optimizer = OPTIMIZERS.build(cfg.optimizer)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group['lr'], group['momentum'], group['weight_decay']) == (0.1, 0.9, 0.0001)
    assert group['params'][0] is model.weight


# inheritance -----------------------------------------------------------------------------------
def test_inherit_one_base():
    cfg = load('resnet50.py')
    assert cfg.optimizer == dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
    assert cfg.model == dict(type='ResNet', depth=50)


def test_inherit_several_bases():
    cfg = load('resnet50_runtime.py')
    assert set(cfg) == {'optimizer', 'gpu_ids', 'model'}
    assert cfg.gpu_ids == [0, 1] and cfg.optimizer.lr == 0.02


def test_modify_one_key_of_an_inherited_dict():
    assert load('resnet50_lr0.01.py').optimizer == dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)


def test_non_dict_values_are_replaced():
    assert load('resnet50_gpu0.py').gpu_ids == [0]


def test_delete_key_drops_inherited_keys():
    cfg = load('resnet50_delete_key.py')
    assert cfg.optimizer == dict(type='SGD', lr=0.01)
    assert '_delete_' not in cfg.optimizer


def test_reference_to_an_inherited_value():
    assert load('refer_base_var.py').a == dict(type='ResNet', depth=50)


def test_reference_then_modify_works_in_kiln():
    # MMEngine raises a parse error on this file; kiln's {{_base_.x}} is a copy in .py files
    cfg = load('refer_base_var_then_modify.py')
    assert cfg.a == dict(type='MobileNet', depth=50)
    assert cfg.model == dict(type='ResNet', depth=50)


def test_modify_a_base_variable_changes_the_inherited_value():
    cfg = load('modify_base_var.py')
    assert cfg.a == dict(type='MobileNet', depth=50)
    assert cfg.model == dict(type='MobileNet', depth=50)  # as in MMEngine


# dump ------------------------------------------------------------------------------------------
def test_dump_inherited_config_to_three_formats(tmp_path):
    cfg = load('resnet50.py')
    expected = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
                    model=dict(type='ResNet', depth=50))
    cfg.dump(tmp_path / 'resnet50_dump.py')
    text = (tmp_path / 'resnet50_dump.py').read_text()
    assert text == ("optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)\n"
                    "model = dict(type='ResNet', depth=50)\n")
    cfg.dump(tmp_path / 'resnet50_dump.yaml')
    assert yaml.safe_load((tmp_path / 'resnet50_dump.yaml').read_text()) == expected
    cfg.dump(tmp_path / 'resnet50_dump.json')
    assert json.loads((tmp_path / 'resnet50_dump.json').read_text()) == expected
    for ext in ('py', 'yaml', 'json'):  # the dumps stand alone (no _base_)
        assert Config.fromfile(tmp_path / f'resnet50_dump.{ext}').to_dict() == expected


def test_dump_a_config_made_from_a_dict(tmp_path):
    Config(dict(a=1, b=2)).dump(tmp_path / 'dump_dict.py')
    assert (tmp_path / 'dump_dict.py').read_text() == 'a = 1\nb = 2\n'


# advanced --------------------------------------------------------------------------------------
def test_predefined_variables():
    cfg = load('predefined_var.py')
    assert cfg.work_dir == './work_dir/predefined_var'
    assert (cfg.file_name, cfg.extension) == ('predefined_var.py', '.py')
    assert Path(cfg.here) == DATA


def demo_train(argv):
    """The tutorial's demo_train.py."""
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def test_cfg_options_modify_nested_values():
    example = str(DATA / 'example.py')
    cfg = demo_train([example, '--cfg-options', 'optimizer.lr=0.1'])
    assert cfg.to_dict() == dict(model=dict(type='CustomModel', in_channels=[1, 2, 3]),
                                 optimizer=dict(type='SGD', lr=0.1))
    cfg = demo_train([example, '--cfg-options', 'model.in_channels=[1, 1, 1]'])
    assert cfg.model.in_channels == [1, 1, 1]
    cfg = demo_train([example, '--cfg-options', 'model.in_channels=(1, 1, 1)'])
    assert cfg.model.in_channels == (1, 1, 1)
    # repeating the option extends it
    cfg = demo_train([example, '--cfg-options', 'optimizer.type=Adam',
                      '--cfg-options', 'model.in_channels=[1, 1, 1]'])
    assert cfg.to_dict() == dict(model=dict(type='CustomModel', in_channels=[1, 1, 1]),
                                 optimizer=dict(type='Adam', lr=0.01))


def test_environment_variable_versus_cfg_options(monkeypatch):
    monkeypatch.delenv('KILN_TUTORIAL_DATASET', raising=False)
    path = str(DATA / 'replace_data_root.py')
    assert demo_train([path]).to_dict() == dict(
        dataset_type='CocoDataset', data_root='/data/coco/',
        dataset=dict(ann_file='/data/coco/train.json'))
    # --cfg-options changes the key only
    cfg = demo_train([path, '--cfg-options', 'data_root=/new/dataset/path/'])
    assert (cfg.data_root, cfg.dataset.ann_file) == ('/new/dataset/path/', '/data/coco/train.json')
    # the environment variable is substituted before parsing: values computed from it follow
    monkeypatch.setenv('KILN_TUTORIAL_DATASET', '/new/dataset/path/')
    cfg = demo_train([path])
    assert (cfg.data_root, cfg.dataset.ann_file) == ('/new/dataset/path/',
                                                     '/new/dataset/path/train.json')


def test_environment_variable_for_a_number(monkeypatch):
    monkeypatch.delenv('KILN_TUTORIAL_NUM_CLASSES', raising=False)
    assert load('replace_num_classes.py').model.bbox_head.num_classes == 80
    monkeypatch.setenv('KILN_TUTORIAL_NUM_CLASSES', '20')
    assert load('replace_num_classes.py').to_dict() == dict(model=dict(bbox_head=dict(num_classes=20)))


def test_custom_imports_register_a_user_module(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    monkeypatch.delitem(sys.modules, 'kiln_tutorial_my_module', raising=False)
    cfg = load('custom_imports.py')
    assert 'kiln_tutorial_my_module' in sys.modules
    from kiln.registry import OPTIMIZERS
    optim = OPTIMIZERS.build(cfg.optimizer)
    assert type(optim).__module__ == 'kiln_tutorial_my_module' and optim.lr == 0.5


def test_inherit_configs_of_another_package():
    cfg = load('cross_repo.py')
    schedule = Config.fromfile(REPO_CONFIGS / '_base_' / 'schedules' / 'schedule_1x.py')
    assert cfg.train_cfg == schedule.train_cfg == dict(
        type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
    assert cfg.model.type == 'FCOS' and cfg.default_scope == 'kiln.det'
    assert str(REPO_CONFIGS / '_base_' / 'default_runtime.py') in cfg.text


def test_config_missing_from_kiln_package_is_a_clear_error():
    with pytest.raises(FileNotFoundError) as info:
        load('cross_repo_missing.py')
    message = str(info.value)
    assert "cross_repo_missing.py, line 2: base config 'mmdet::_base_/models/faster_rcnn_r50_fpn.py' " \
           'not found' in message
    assert "'mmdet' is an alias of kiln here" in message
    assert f'searched {REPO_CONFIGS}' in message and 'fcos_r50_fpn.py' in message
