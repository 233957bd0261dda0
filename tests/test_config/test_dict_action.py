import argparse

import pytest

from kiln.config import Config, DictAction


@pytest.fixture
def parser():
    p = argparse.ArgumentParser(prog='train')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p


@pytest.mark.parametrize('text,value', [
    ('1', 1), ('-3', -3), ('0.1', 0.1), ('1e-3', 0.001), ('True', True), ('false', False),
    ('None', None), ('none', None), ('SGD', 'SGD'), ("'quoted'", 'quoted'), ('"1"', '1'),
    ('kiln.det', 'kiln.det'), ('/data/coco/', '/data/coco/'), ('work_dirs/exp1', 'work_dirs/exp1'),
    ('', ''), ('(1,2)', (1, 2)), ('(1,)', (1,)), ('()', ()), ('[1, 2]', [1, 2]), ('[]', []),
    ('a,b', ['a', 'b']), ('1,2', [1, 2]), ('(1,2),(3,4)', [(1, 2), (3, 4)]),
    ('[(1,2),(3,4)]', [(1, 2), (3, 4)]), ("[dict(type='X')]", [{'type': 'X'}]),
    ("dict(a=dict(b=[1, 'c']), d=None)", {'a': {'b': [1, 'c']}, 'd': None}),
    ("{'a': 1, 2: (3,)}", {'a': 1, 2: (3,)}), ('[a, b.c, True]', ['a', 'b.c', True]),
])
def test_parse_value(text, value):
    parsed = DictAction.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize('text', ["[__import__('os').system('x')]", '(1 + 2, open(1))',
                                  '[dict(**x)]', '{**a}', '[lambda: 1]'])
def test_unsafe_bracketed_values_are_rejected(text):
    with pytest.raises(ValueError, match='cannot parse'):
        DictAction.parse_value(text)


def test_non_bracketed_expressions_stay_strings():
    assert DictAction.parse_value("__import__('os')") == "__import__('os')"
    assert DictAction.parse_value('1 + 2') == '1 + 2'


def test_action_collects_and_extends(parser):
    args = parser.parse_args([
        '--cfg-options', 'a.b=1', 'c="(1,2)"', "d=[dict(type='X')]", 'e=a,b',
        '--cfg-options', 'optimizer.type=Adam', 'f=x=y'])
    assert args.cfg_options == {'a.b': 1, 'c': '(1,2)', 'd': [{'type': 'X'}], 'e': ['a', 'b'],
                                'optimizer.type': 'Adam', 'f': 'x=y'}
    # the shell removes the quotes: c="(1,2)" arrives as c=(1,2)
    args = parser.parse_args(['--cfg-options', 'c=(1,2)'])
    assert args.cfg_options == {'c': (1, 2)}
    assert parser.parse_args([]).cfg_options is None


def test_action_errors_name_the_option(parser, capsys):
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', 'novalue'])
    assert "expected KEY=VALUE, got 'novalue'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', 'model.x=[foo(1)]'])
    err = capsys.readouterr().err
    assert 'model.x' in err and 'only dict(key=value, ...) calls are allowed' in err


def test_action_output_merges_into_config(parser):
    cfg = Config(dict(model=dict(type='CustomModel', in_channels=[1, 2, 3]),
                      optimizer=dict(type='SGD', lr=0.01)))
    args = parser.parse_args(['--cfg-options', 'optimizer.lr=0.1', 'model.in_channels=[1,1,1]'])
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.to_dict() == dict(model=dict(type='CustomModel', in_channels=[1, 1, 1]),
                                 optimizer=dict(type='SGD', lr=0.1))
