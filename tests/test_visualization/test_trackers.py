"""Tracker backends: each writes a real run that is read back with the tracker's own reader."""
import builtins
import glob
import json
import struct

import numpy as np
import pytest

from kiln.config import Config
from kiln.registry import VISBACKENDS
from kiln.visualization import Visualizer

CFG = Config(dict(model=dict(type='CellNet', width=8), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
IMAGE = np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3)


def _log_three_steps(backend_cfg, save_dir):
    """A one-config-line Visualizer logging a config, 3 steps of scalars and an image, then closed."""
    vis = Visualizer(vis_backends=[backend_cfg], save_dir=save_dir)
    backend = next(iter(vis.vis_backends.values()))
    vis.add_config(CFG)
    for step in (1, 2, 3):
        vis.add_scalars({'loss': 1.0 / step, 'lr': 0.01 * step, 'mode': 'train'}, step=step)  # 'mode' not numeric
    vis.add_image('pred', IMAGE, step=3)
    vis.close()
    return backend


def test_tensorboard_scalars_image_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    backend = _log_three_steps(dict(type='TensorboardVisBackend'), tmp_path)
    acc = EventAccumulator(str(backend.save_dir), size_guidance={'tensors': 0, 'images': 0, 'scalars': 0})
    acc.Reload()
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars('loss')] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert [e.step for e in acc.Images('pred')] == [3]
    assert (acc.Images('pred')[0].width, acc.Images('pred')[0].height) == (10, 8)
    text = acc.Tensors('config/text_summary')[0].tensor_proto.string_val[0].decode()
    assert "type='CellNet'" in text


def test_mlflow_params_metrics_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient
    (tmp_path / 'best_accuracy_epoch_2.pth').write_bytes(b'weights')  # the work dir's best checkpoint
    run_dir = tmp_path / '20260101_000000'
    (run_dir / 'plots').mkdir(parents=True)
    (run_dir / 'plots' / 'curves.png').write_bytes(b'\x89PNG fake')
    (run_dir / '20260101_000000.log').write_text('a log line\n')
    cfg = dict(type='MLflowVisBackend', exp_name='cells', tags=dict(team='a'), params=dict(note='x'))
    backend = _log_three_steps(cfg, run_dir)
    client = MlflowClient(f'sqlite:///{run_dir / "vis_data" / "mlruns" / "mlflow.db"}')
    run = client.get_run(backend.run_id)
    assert run.info.run_name == '20260101_000000' and run.info.status == 'FINISHED'
    assert client.get_experiment(run.info.experiment_id).name == 'cells'
    assert run.data.tags['team'] == 'a'
    assert run.data.params['model.width'] == '8' and run.data.params['optim_wrapper.optimizer.lr'] == '0.1'
    assert run.data.params['note'] == 'x'
    history = client.get_metric_history(backend.run_id, 'loss')
    assert sorted((m.step, round(m.value, 6)) for m in history) == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert 'mode' not in run.data.metrics

    def paths(path=None):
        out = []
        for f in client.list_artifacts(backend.run_id, path):
            out += paths(f.path) if f.is_dir else [f.path]
        return out

    arts = set(paths())
    assert {'config.py', 'images/pred_3.png', 'plots/curves.png', '20260101_000000.log',
            'checkpoints/best_accuracy_epoch_2.pth'} <= arts
    assert not any('mlruns' in a for a in arts)
    local = client.download_artifacts(backend.run_id, 'config.py', str(tmp_path / 'dl'))
    assert "type='CellNet'" in open(local).read()


def _wandb_records(run_file):
    """Records of a ``.wandb`` file: W&B's LevelDB-style log (7-byte header, 32 KiB blocks of chunks with a
    7-byte chunk header) holding ``wandb_internal_pb2.Record`` messages."""
    from wandb.proto import wandb_internal_pb2 as pb
    data = open(run_file, 'rb').read()
    assert data[:4] == b':W&B'
    pos, block, pending, records = 7, 32768, b'', []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack('<IHB', data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += block - pos % block
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b''
    return records


def test_wandb_offline_run_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_SILENT', 'true')
    cfg = dict(type='WandbVisBackend', init_kwargs=dict(project='kiln-test', dir=str(tmp_path), name='cells'),
               define_metric_cfg={'loss': 'min'})
    _log_three_steps(cfg, tmp_path / 'run')
    import wandb
    wandb.teardown()  # wait for W&B's writer process to flush the run file
    run_files = glob.glob(str(tmp_path / 'wandb' / 'offline-run-*' / 'run-*.wandb'))
    assert len(run_files) == 1  # init_kwargs' dir was used
    records = _wandb_records(run_files[0])
    history = [{i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof('record_type') == 'history']
    assert [h['loss'] for h in history if 'loss' in h] == pytest.approx([1.0, 0.5, 1 / 3])
    assert all('mode' not in h for h in history)
    assert any(k.startswith('pred') for h in history for k in h)  # the image
    config = {i.key or '/'.join(i.nested_key): json.loads(i.value_json) for r in records if r.WhichOneof('record_type') == 'config'
              for i in r.config.update}
    assert config['model'] == {'type': 'CellNet', 'width': 8}
    run = next(r.run for r in records if r.WhichOneof('record_type') == 'run')
    assert run.display_name == 'cells' and run.project == 'kiln-test'


def test_dvclive_read_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive runs `dvc init` in the git repository around the cwd (see the backend)
    from dvclive.serialize import load_yaml
    from dvclive.utils import parse_metrics

    backend = _log_three_steps(dict(type='DVCLiveVisBackend'), tmp_path)
    live_dir = backend.save_dir / 'dvclive'

    class _Live:  # parse_metrics reads the plots and summary of a Live object's directory
        plots_dir = str(live_dir / 'plots')
        metrics_file = str(live_dir / 'metrics.json')

    series, _ = parse_metrics(_Live())
    loss = next(v for k, v in series.items() if k.endswith('loss.tsv'))
    assert [(int(r['step']), round(float(r['loss']), 6)) for r in loss] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert load_yaml(live_dir / 'params.yaml')['model.width'] == 8
    assert (live_dir / 'plots' / 'images' / 'pred_3.png').is_file()
    assert not (tmp_path / 'dvc.yaml').exists()


def test_clearml_offline_session(tmp_path, monkeypatch):
    import time

    import clearml
    import psutil
    monkeypatch.setenv('CLEARML_OFFLINE_MODE', '1')
    monkeypatch.setenv('CLEARML_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('HOME', str(tmp_path))
    before = clearml.Task.__dict__.get('_report_subprocess_enabled')
    from clearml.backend_api.session.session import Session
    from clearml.backend_interface.base import InterfaceBase
    for cls in (InterfaceBase, Session):  # clearml was imported before the variable is set: the backend turns
        monkeypatch.setattr(cls, '_offline_mode', cls._offline_mode)  # offline mode on; undone after the test
    me = psutil.Process()

    def same_program():
        out = []
        for p in me.children(recursive=True):
            try:
                out += [p.pid] if p.cmdline() == me.cmdline() else []
            except psutil.NoSuchProcess:
                pass
        return set(out)

    def forks():  # children running this same program (a fork) and still doing so a moment later: not ClearML's
        # short `git` repository probes, which show this program's command line between their fork and exec
        seen = same_program()
        if seen:
            time.sleep(0.5)
            seen &= same_program()
        return seen

    children = forks()
    backend = VISBACKENDS.build(dict(type='ClearMLVisBackend', save_dir=tmp_path / 'run' / 'vis_data',
                                     init_kwargs=dict(project_name='kiln-test', task_name='cells')))
    backend.add_config(CFG)
    backend.add_scalars({'loss': 0.5, 'mode': 'train'}, step=1)
    backend.add_scalars({'loss': 0.25}, step=2)
    task = backend.experiment
    folder = task.get_offline_mode_folder()
    assert task.name == 'cells'
    # reports go from a thread: ClearML forked no reporting subprocess (whose shutdown made close() slow)
    assert forks() <= children
    tic = time.perf_counter()
    backend.close()
    close_s = time.perf_counter() - tic
    assert clearml.Task.__dict__.get('_report_subprocess_enabled') is before  # ClearML's setting restored
    events = [e for line in open(f'{folder}/metrics.jsonl') for e in json.loads(line)]
    scalars = [(e['iter'], e['value']) for e in events if e.get('metric') == 'loss']
    assert scalars == [(1, 0.5), (2, 0.25)]
    assert close_s < 30, close_s  # 0.7 s measured (11 s with the reporting subprocess); a loose bound for CI


@pytest.mark.parametrize('backend,package', [('MLflowVisBackend', 'mlflow'), ('WandbVisBackend', 'wandb'),
                                             ('DVCLiveVisBackend', 'dvclive'), ('AimVisBackend', 'aim'),
                                             ('ClearMLVisBackend', 'clearml')])
def test_missing_package_names_it(tmp_path, monkeypatch, backend, package):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == package or name.startswith(package + '.'):
            raise ModuleNotFoundError(f'No module named {name!r}')
        return real_import(name, *args, **kwargs)

    import importlib
    real_import_module = importlib.import_module

    def fake_import_module(name, *args, **kwargs):
        if name == package or name.startswith(package + '.'):
            raise ModuleNotFoundError(f'No module named {name!r}')
        return real_import_module(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)
    monkeypatch.setattr(importlib, 'import_module', fake_import_module)
    b = VISBACKENDS.build(dict(type=backend, save_dir=tmp_path))  # building is free: the import is lazy
    with pytest.raises(ImportError, match=rf'{backend} needs the {package!r} package: pip install {package}'):
        b.add_scalars({'loss': 1.0}, step=1)
    b.close()


def test_aim_read_back_through_repo(tmp_path):
    from aim import Repo
    from aim.storage.context import Context
    backend = _log_three_steps(dict(type='AimVisBackend', init_kwargs=dict(experiment='cells')), tmp_path)
    repo = Repo(str(backend.save_dir))  # the repository is <save_dir>/.aim
    runs = list(repo.iter_runs())  # lists indexed runs only: close() indexed it
    assert len(runs) == 1
    run = runs[0]
    assert run.experiment == 'cells'
    assert run['hparams']['model'] == {'type': 'CellNet', 'width': 8}
    assert run['hparams']['optim_wrapper']['optimizer']['lr'] == 0.1
    steps, (values, _epochs, _times) = run.get_metric('loss', Context({})).data.items_list()
    assert [(int(s), round(float(v), 6)) for s, v in zip(steps, values)] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    names = {m.name for m in run.metrics()}
    assert names >= {'loss', 'lr'} and 'mode' not in names
    images = run.get_image_sequence('pred', Context({}))
    assert images is not None and images.data.indices_list() == [3]
