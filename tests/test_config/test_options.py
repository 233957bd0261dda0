"""--cfg-options checks (misspelt keys, wrong value types) and re-evaluated config variables."""
from pathlib import Path

import pytest

from kiln.config import Config
from kiln.config.options import check_options, variable_options

DATA = Path(__file__).parent / 'data' / 'variables'


@pytest.fixture
def cfg():
    return Config.fromfile(DATA / 'experiment.py')


def test_unknown_top_level_key_warns_with_closest_key(cfg):
    warnings = check_options(cfg, {'train_cfgg.max_epochs': 1, 'train_cfg.max_epochs': 2})
    assert warnings == ["'train_cfgg.max_epochs': the config has no top-level key 'train_cfgg', "
                        "it is added; did you mean 'train_cfg'?"]
    (warning,) = check_options(cfg, {'zzz': 1})
    assert "no top-level key 'zzz'" in warning and 'no existing key is close' in warning


def test_nested_new_key_warns_only_when_a_sibling_is_close(cfg):
    (warning,) = check_options(cfg, {'train_cfg.max_epoch': 3})
    assert "'train_cfg' has no key 'max_epoch'" in warning and "'train_cfg.max_epochs'" in warning
    assert check_options(cfg, {'model.backbone.depth': 18, 'model.bbox_head.init_cfg': None}) == []


def test_string_for_a_number_names_key_and_value(cfg):
    with pytest.raises(TypeError) as info:
        check_options(cfg, {'model.bbox_head.num_classes': 'three'})
    msg = str(info.value)
    assert "model.bbox_head.num_classes='three'" in msg and '3 (int)' in msg
    with pytest.raises(TypeError, match=r"param_scheduler\.1\.milestones\.0='x'"):
        check_options(cfg, {'param_scheduler.1.milestones.0': 'x'})
    # other changes of type are legitimate overrides
    assert check_options(cfg, {'num_classes': 5, 'train_cfg.val_interval': 2.5,
                               'param_scheduler.1.milestones': (5, 8),
                               'model.type': 'Other'}) == []


def test_variables_re_evaluate_what_depends_on_them():
    cfg = Config.fromfile(DATA / 'experiment.py', variables=dict(max_epochs=12))
    assert cfg.max_epochs == 12
    assert cfg.train_cfg.to_dict() == dict(type='EpochBasedTrainLoop', max_epochs=12,
                                           val_interval=6)
    assert cfg.param_scheduler[1].to_dict() == dict(
        type='MultiStepLR', by_epoch=True, begin=0, end=12, milestones=[10])
    assert cfg.default_hooks.checkpoint.interval == 3           # through _base_.max_epochs
    # a plain override (MMEngine's merge_from_dict) changes only the key itself
    plain = Config.fromfile(DATA / 'experiment.py')
    plain.merge_from_dict({'max_epochs': 12})
    assert plain.max_epochs == 12 and plain.train_cfg.max_epochs == 24
    assert plain.param_scheduler[1].milestones == [22]


def test_variable_options_are_top_level_non_dict_values(cfg):
    options = {'max_epochs': 12, 'num_classes': 5, 'train_cfg.max_epochs': 1,
               'model': dict(type='X'), 'nope': 1, '_base_': 'x.py'}
    assert variable_options(cfg, options) == {'max_epochs': 12, 'num_classes': 5}


def test_cli_load_config_applies_variables_and_reports(capsys):
    from kiln.cli._common import CLIError, load_config
    cfg = load_config(str(DATA / 'experiment.py'), {'max_epochs': 12, 'num_classes': 5,
                                                    'trian_cfg.val_interval': 1}, command='train')
    assert cfg.train_cfg.max_epochs == 12 and cfg.param_scheduler[1].milestones == [10]
    assert cfg.model.bbox_head.num_classes == 5
    assert "kiln train: warning: --cfg-options 'trian_cfg.val_interval'" in capsys.readouterr().err
    with pytest.raises(CLIError, match=r"num_classes='three'"):
        load_config(str(DATA / 'experiment.py'), {'num_classes': 'three'})
