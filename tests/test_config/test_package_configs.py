"""Configs shipped by packages: `pkg::path` bases and `from pkg.configs.x import *`."""
import textwrap
from pathlib import Path

import pytest

from kiln.config import Config
from kiln.config.package_configs import package_config_roots

REPO_CONFIGS = Path(__file__).parents[2] / 'configs'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip('\n'), encoding='utf-8')
    return path


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """Two importable packages: one with OpenMMLab's .mim/configs layout, one with configs/, and a
    distribution whose name differs from its import name."""
    site = tmp_path / 'site'
    write(site, 'kiln_mim_pkg/__init__.py', "raise RuntimeError('never imported')\n")
    write(site, 'kiln_mim_pkg/.mim/configs/_base_/runtime.py', "log_level = 'INFO'\nseed = 1\n")
    write(site, 'kiln_mim_pkg/.mim/configs/_base_/data.yaml', 'batch_size: 2\n')
    write(site, 'kiln_cfg_pkg/__init__.py', '')
    write(site, 'kiln_cfg_pkg/configs/base.py', """
        _base_ = ['../configs/inner/more.py']
        model = dict(depth=50)
    """)
    write(site, 'kiln_cfg_pkg/configs/inner/more.py', "extra = True\n")
    write(site, 'kiln_cfg_pkg/configs/pure.py', """
        from kiln.config import read_base
        with read_base():
            from .inner.more import *
        model = dict(depth=18, extra=extra)
    """)
    write(site, 'kiln_fancy_import/__init__.py', '')
    write(site, 'kiln_fancy_import/configs/x.py', "fancy = 1\n")
    write(site, 'kiln_fancy_dist-1.0.dist-info/METADATA',
          'Metadata-Version: 2.1\nName: kiln-fancy-dist\nVersion: 1.0\n')
    write(site, 'kiln_fancy_dist-1.0.dist-info/top_level.txt', 'kiln_fancy_import\n')
    monkeypatch.syspath_prepend(str(site))
    return site


def test_package_bases_from_mim_and_configs_directories(tmp_path, packages):
    path = write(tmp_path, 'exp.py', """
        _base_ = ['kiln_mim_pkg::_base_/runtime.py', 'kiln_mim_pkg::_base_/data.yaml',
                  'kiln_cfg_pkg::base.py']
        seed = 2
    """)
    cfg = Config.fromfile(path)
    assert cfg.to_dict() == dict(log_level='INFO', seed=2, batch_size=2, extra=True,
                                 model=dict(depth=50))
    assert str(packages / 'kiln_mim_pkg' / '.mim' / 'configs' / '_base_' / 'runtime.py') in cfg.text


def test_distribution_name_is_resolved_with_importlib_metadata(tmp_path, packages):
    cfg = Config.fromfile(write(tmp_path, 'exp.py', "_base_ = 'kiln-fancy-dist::x.py'\n"))
    assert cfg.fancy == 1


def test_module_paths_inside_read_base(tmp_path, packages):
    cfg = Config.fromfile(write(tmp_path, 'exp.py', """
        from mmengine.config import read_base
        with read_base():
            from kiln_cfg_pkg.configs.pure import *
            from kiln_mim_pkg.configs._base_.runtime import seed
    """))
    assert cfg.to_dict() == dict(extra=True, model=dict(depth=18, extra=True), seed=1)


def test_kiln_and_mmdet_resolve_to_the_repository_configs(tmp_path):
    assert REPO_CONFIGS in package_config_roots('kiln')
    assert package_config_roots('mmdet') == package_config_roots('kiln')
    cfg = Config.fromfile(write(tmp_path, 'exp.py', """
        from kiln.config import read_base
        with read_base():
            from kiln.configs._base_.schedules.schedule_1x import train_cfg
    """))
    assert cfg.train_cfg.max_epochs == 12


def test_errors(tmp_path, packages):
    with pytest.raises(ModuleNotFoundError, match=r"exp1\.py, line 1: base config "
                                                  r"'kiln_nope_pkg::a\.py': no installed package"):
        Config.fromfile(write(tmp_path, 'exp1.py', "_base_ = 'kiln_nope_pkg::a.py'\n"))
    with pytest.raises(FileNotFoundError) as info:
        Config.fromfile(write(tmp_path, 'exp2.py', "_base_ = 'kiln_mim_pkg::_base_/runtim.py'\n"))
    assert "base config 'kiln_mim_pkg::_base_/runtim.py' not found" in str(info.value)
    assert "did you mean '_base_/runtime.py'?" in str(info.value)
    with pytest.raises(ValueError, match=r"invalid package base '::a\.py'"):
        Config.fromfile(write(tmp_path, 'exp3.py', "_base_ = '::a.py'\n"))
    with pytest.raises(FileNotFoundError, match=r"base config module 'kiln_cfg_pkg\.configs\.nope' "
                                                r'not found; tried .*nope\.py'):
        Config.fromfile(write(tmp_path, 'exp4.py', """
            from kiln.config import read_base
            with read_base():
                from kiln_cfg_pkg.configs.nope import *
        """))
