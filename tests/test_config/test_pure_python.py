"""Pure-Python configs: `with read_base():` imports of bases, lazy imports, dump and reload."""
import copy
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kiln.config import Config, LazyObject, read_base

DATA = Path(__file__).parent / 'data' / 'pure_python'
REPO = Path(__file__).parents[2]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip('\n'), encoding='utf-8')
    return path


def test_read_base_star_and_named_imports_and_python_updates():
    cfg = Config.fromfile(DATA / 'toy' / 'toy_sgd.py')
    assert cfg.to_dict() == dict(
        model=dict(type='ToyNet', depth=18, act_cfg=dict(type=LazyObject('torch.nn', 'ReLU')),
                   norm=LazyObject('torch.nn', 'BatchNorm2d'),
                   head=dict(type='ToyHead', num_classes=3, loss=dict(type='ToyLoss', weight=2.0))),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type=LazyObject('torch.optim', 'Adam'), lr=0.001)),
        gpu_ids=[0, 1], work_dir='./work_dirs/toy_sgd')
    # names bound by import statements (SGD, Adam, read_base) are not config keys
    assert set(cfg) == {'model', 'optim_wrapper', 'gpu_ids', 'work_dir'}
    # every file read is in the text, bases first
    text = cfg.text
    assert text.index('toy_net.py') < text.index('optimizer.py') < text.index('toy_sgd.py')


def test_mmengine_spelling_named_imports_and_old_style_bases():
    cfg = Config.fromfile(DATA / 'toy' / 'toy_mmengine_style.py')
    assert cfg.model.to_dict()['act_cfg'] == dict(type=LazyObject('torch.nn.GELU'))
    # legacy_schedule.py has `_base_ = ['runtime.py']`; its keys come in with `import *`
    assert (cfg.default_scope, cfg.gpu_ids, cfg.train_cfg.max_epochs) == ('kiln', [0], 24)
    assert 'optim_wrapper' not in cfg  # only `model` was imported from toy_net.py


def test_old_style_config_inherits_a_pure_python_one():
    cfg = Config.fromfile(DATA / 'toy' / 'toy_legacy_child.py')
    assert cfg.model.head.num_classes == 5 and cfg.model.depth == 18  # dicts merge
    assert cfg.optim_wrapper.to_dict()['optimizer'] == dict(type=LazyObject('torch.optim.Adam'),
                                                            lr=0.01)


def test_absolute_module_paths_reach_kiln_configs():
    cfg = Config.fromfile(DATA / 'toy' / 'kiln_runtime.py')
    runtime = Config.fromfile(REPO / 'configs' / '_base_' / 'default_runtime.py')
    assert cfg.default_hooks == runtime.default_hooks
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)


def test_reading_does_not_import_torch_building_does():
    code = textwrap.dedent(f"""
        import sys
        from kiln.config import Config
        cfg = Config.fromfile({str(DATA / 'toy' / 'toy_sgd.py')!r})
        text = cfg.pretty_text
        copy = Config.fromstring(text, '.py')
        assert 'torch' not in sys.modules, 'read'
        assert copy.to_dict() == cfg.to_dict()
        optimizer_type = cfg.optim_wrapper.optimizer.type   # reading a lazy value imports it
        assert 'torch' in sys.modules
        import torch
        assert optimizer_type is torch.optim.Adam
        print('ok')
    """)
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


def test_lazy_values_stay_lazy_in_items_copies_and_pickles():
    cfg = Config.fromfile(DATA / 'toy' / 'toy_sgd.py')
    raw = dict.__getitem__(cfg.optim_wrapper, 'optimizer')
    assert dict.__getitem__(raw, 'type') == LazyObject('torch.optim', 'Adam')
    assert dict(raw.items())['type'] == LazyObject('torch.optim.Adam')
    for clone in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg)), copy.copy(cfg)):
        assert clone.to_dict() == cfg.to_dict()
        assert clone.filename == cfg.filename and clone.text == cfg.text


def test_pretty_text_writes_imports_and_reloads_equal(tmp_path):
    cfg = Config.fromfile(DATA / 'toy' / 'toy_sgd.py')
    text = cfg.pretty_text
    assert text.startswith('from torch.nn import ReLU\nfrom torch import nn\n'
                           'from torch.optim import Adam\n\n')
    assert "act_cfg=dict(type=ReLU)" in text and 'norm=nn.BatchNorm2d' in text
    cfg.dump(tmp_path / 'dumped.py')
    again = Config.fromfile(tmp_path / 'dumped.py')
    assert again.to_dict() == cfg.to_dict()
    assert Config.diff(cfg, again) == ''


def test_import_names_that_collide_get_aliases(tmp_path):
    path = write(tmp_path, 'c.py', """
        from torch.optim import SGD
        from kiln_fake_optim import SGD as OtherSGD
        SGD_1 = 'a config key'
        a = dict(type=SGD)
        b = dict(type=OtherSGD)
    """)
    cfg = Config.fromfile(path)
    text = cfg.pretty_text
    assert 'from torch.optim import SGD\nfrom kiln_fake_optim import SGD as SGD_2\n' in text
    assert 'a = dict(type=SGD)\nb = dict(type=SGD_2)\n' in text
    assert Config.fromstring(text, '.py').to_dict() == cfg.to_dict()


def test_json_and_yaml_dumps_write_dotted_paths(tmp_path):
    cfg = Config.fromfile(DATA / 'toy' / 'toy_sgd.py')
    cfg.dump(tmp_path / 'c.yaml')
    again = Config.fromfile(tmp_path / 'c.yaml')
    assert again.optim_wrapper.optimizer.type == 'torch.optim.Adam'
    assert again.model.norm == 'torch.nn.BatchNorm2d'


def test_auto_detection_of_the_style(tmp_path):
    # a non-standard-library import, no _base_: lazy
    lazy = Config.fromfile(write(tmp_path, 'lazy.py', """
        from kiln_not_installed_anywhere import Thing
        model = dict(type=Thing)
    """))
    assert dict.__getitem__(lazy.model, 'type') == LazyObject('kiln_not_installed_anywhere.Thing')
    # standard library imports are real imports
    std = Config.fromfile(write(tmp_path, 'std.py', """
        import os.path as osp
        from collections import OrderedDict
        name = osp.join('a', 'b')
        kind = dict(type=OrderedDict)
    """))
    assert std.name == 'a/b' and std.kind.type is __import__('collections').OrderedDict
    # a _base_ assignment means the old style: imports are real
    write(tmp_path, 'base.py', 'x = 1\n')
    old = Config.fromfile(write(tmp_path, 'old.py', """
        _base_ = 'base.py'
        from kiln.config import ConfigDict
        y = dict(type=ConfigDict)
    """))
    assert old.to_dict() == dict(x=1, y=dict(type=__import__('kiln.config').config.ConfigDict))


def test_lazy_import_flag_overrides_detection(tmp_path):
    path = write(tmp_path, 'c.py', """
        from kiln.config.config_dict import ConfigDict
        from kiln.config import read_base
        with read_base():
            from .base import *
        y = dict(type=ConfigDict)
    """)
    write(tmp_path, 'base.py', 'x = 1\n')
    assert dict.__getitem__(Config.fromfile(path).y, 'type') == LazyObject(
        'kiln.config.config_dict.ConfigDict')
    eager = Config.fromfile(path, lazy_import=False)
    from kiln.config import ConfigDict
    assert eager.to_dict() == dict(x=1, y=dict(type=ConfigDict))


def test_names_imported_by_a_base_are_usable_but_not_keys(tmp_path):
    write(tmp_path, 'base.py', """
        from torch.optim import SGD
        optimizer = dict(type=SGD)
    """)
    cfg = Config.fromfile(write(tmp_path, 'child.py', """
        from kiln.config import read_base
        with read_base():
            from .base import *
        scheduler_optimizer = dict(type=SGD, lr=0.1)
    """))
    assert set(cfg) == {'optimizer', 'scheduler_optimizer'}
    assert cfg.to_dict()['scheduler_optimizer']['type'] == LazyObject('torch.optim.SGD')


def test_later_base_import_rebinds_a_name(tmp_path):
    write(tmp_path, 'a.py', "model = dict(depth=50, width=1)\n")
    write(tmp_path, 'b.py', "model = dict(depth=18)\n")
    cfg = Config.fromfile(write(tmp_path, 'c.py', """
        from kiln.config import read_base
        with read_base():
            from .a import *
            from .b import *
    """))
    assert cfg.model == dict(depth=18)  # plain Python: no merge between bases


def test_read_base_errors_name_the_file(tmp_path):
    path = write(tmp_path, 'missing.py', """
        from kiln.config import read_base
        with read_base():
            from .._base_.nothing_here import *
    """)
    with pytest.raises(FileNotFoundError, match=r"missing\.py: base config `from \.\._base_\.nothing_here "
                                                r"import \.\.\.` not found"):
        Config.fromfile(path)
    write(tmp_path, 'a.py', 'x = 1\n')
    path = write(tmp_path, 'plain_import.py', """
        from kiln.config import read_base
        with read_base():
            import a
    """)
    with pytest.raises(ImportError, match=r'plain_import\.py: inside `with read_base\(\):` write '
                                          r'.* not `import a`'):
        Config.fromfile(path)
    path = write(tmp_path, 'directory.py', """
        from kiln.config import read_base
        with read_base():
            from . import a
    """)
    with pytest.raises(ImportError, match=r'not `from \. import \.\.\.`'):
        Config.fromfile(path)
    path = write(tmp_path, 'missing_name.py', """
        from kiln.config import read_base
        with read_base():
            from .a import y
    """)
    with pytest.raises(ImportError, match=r"cannot import name 'y'") as info:
        Config.fromfile(path)
    assert any('missing_name.py' in note for note in info.value.__notes__)
    path = write(tmp_path, 'relative_outside.py', "from .a import x\n")
    with pytest.raises(ImportError, match=r'relative_outside\.py: relative import `from \.a import '
                                          r'\.\.\.` outside `with read_base\(\):`'):
        Config.fromfile(path)
    path = write(tmp_path, 'star.py', "from kiln_fake_pkg import *\n")
    with pytest.raises(ImportError, match=r'star\.py: `from kiln_fake_pkg import \*` cannot be '
                                          'imported lazily'):
        Config.fromfile(path)
    path = write(tmp_path, 'bare.py', """
        from kiln.config import read_base
        with read_base():
            from kiln import anything
    """)
    with pytest.raises(ImportError, match=r'bare\.py: `from kiln import \.\.\.` inside read_base\(\) '
                                          'must name a config module inside a package'):
        Config.fromfile(path)


def test_circular_read_base_is_reported(tmp_path):
    write(tmp_path, 'a.py', "from kiln.config import read_base\nwith read_base():\n"
                            "    from .b import *\n")
    path = write(tmp_path, 'b.py', "from kiln.config import read_base\nwith read_base():\n"
                                   "    from .a import *\n")
    with pytest.raises(ValueError, match=r'circular.*b\.py -> .*a\.py -> .*b\.py'):
        Config.fromfile(path)


def test_calling_a_lazy_object_while_reading_says_what_to_do(tmp_path):
    path = write(tmp_path, 'c.py', """
        import numpy as np
        sizes = np.arange(3)
    """)
    with pytest.raises(TypeError, match=r"c\.py: numpy\.arange was imported lazily .* "
                                        r"lazy_import=False"):
        Config.fromfile(path)
    assert Config.fromfile(path, lazy_import=False).sizes.tolist() == [0, 1, 2]


def test_read_base_outside_a_config_does_nothing():
    with read_base():
        value = 1
    assert value == 1


def test_openmmlab_import_paths_build_kiln_classes():
    pytest.importorskip('torch')
    from kiln.registry import HOOKS, MODELS, TRANSFORMS
    cfg = Config.fromfile(DATA / 'toy' / 'mmdet_types.py')
    assert dict.__getitem__(cfg.loss_cls, 'type') == LazyObject('mmdet.models.losses.FocalLoss')
    loss = MODELS.build(cfg.loss_cls)
    assert type(loss).__module__.startswith('kiln.det.models.losses') and loss.gamma == 2.0
    assert type(TRANSFORMS.build(cfg.pipeline[0])).__name__ == 'LoadImageFromFile'
    assert type(HOOKS.build(cfg.checkpoint)).__module__.startswith('kiln.hooks')
