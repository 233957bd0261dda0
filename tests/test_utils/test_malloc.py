import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.utils import malloc

REPO = Path(__file__).resolve().parents[2]
GLIBC = malloc._glibc() is not None

CONFIG = """
custom_imports = dict(imports=['test_runner.toy', 'test_utils.malloc_probe'], allow_failed_imports=False)
model = dict(type='CellNet')
train_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='train'),
                        sampler=dict(type='DefaultSampler', shuffle=False), batch_size=32)
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
custom_hooks = [dict(type='MallocProbeHook')]
default_hooks = dict(checkpoint=None)
log_level = 'WARNING'
"""


def _train(tmp_path, *options, env=None):
    config = tmp_path / 'probe.py'
    config.write_text(CONFIG)
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1',
               **(env or {}))
    for name in ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES', malloc.ENV_OPT_OUT):
        if name not in (env or {}):
            env.pop(name, None)
    proc = subprocess.run([sys.executable, '-m', 'kiln.cli', 'train', str(config), '--work-dir', str(work),
                           *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((work / 'malloc_probe.json').read_text())


@pytest.mark.skipif(not GLIBC, reason='glibc malloc settings apply on Linux with glibc only')
def test_kiln_train_fixes_the_mmap_threshold_when_asked(tmp_path):
    # off by default: glibc's dynamic threshold, the 4 MiB block comes from the heap
    assert _train(tmp_path) == dict(mmapped=False, settings={})
    probe = _train(tmp_path, '--cfg-options', 'env_cfg.malloc_cfg=True')
    assert probe['mmapped']
    assert probe['settings'] == {k: v for k, v in malloc.DEFAULT_MALLOC_CFG.items() if v is not None}
    assert _train(tmp_path, env={malloc.ENV_OPT_OUT: '1'})['mmapped']  # the environment variable turns it on too


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(malloc, '_applied', {})
    for name in ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_ARENA_MAX', 'GLIBC_TUNABLES',
                 malloc.ENV_OPT_OUT):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason='glibc only')
def test_applied_once_and_environment_wins(fresh, monkeypatch):
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '1048576')  # the user's own glibc setting is left alone
    assert malloc.tune_malloc(source='test') == {}  # off by default
    assert malloc.tune_malloc(True, source='test') == dict(mmap_threshold=128 * 1024)
    assert malloc.tune_malloc(True, source='test') == {}  # already applied
    assert malloc.malloc_settings() == dict(mmap_threshold=128 * 1024)


def test_opt_outs_and_other_platforms(fresh, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger='kiln.utils.malloc')
    assert malloc.tune_malloc(False) == {}
    monkeypatch.setenv(malloc.ENV_OPT_OUT, 'off')
    assert malloc.tune_malloc(True) == {}
    monkeypatch.delenv(malloc.ENV_OPT_OUT)
    monkeypatch.setattr(sys, 'platform', 'darwin')
    assert malloc.tune_malloc(True, source='kiln train') == {} and malloc.malloc_settings() == {}
    assert 'kiln train: malloc settings skipped: the C library is not glibc on Linux (platform darwin)' in caplog.text


@pytest.mark.parametrize('cfg, match', [(dict(mmap_treshold=1), 'unknown key'), (dict(arena_max=-1), 'arena_max'),
                                        (dict(mmap_threshold='1M'), 'mmap_threshold'), ('on', 'must be a dict')])
def test_bad_config_names_the_key(fresh, cfg, match):
    with pytest.raises(ValueError, match=match):
        malloc.tune_malloc(cfg)
