"""kiln eval-watch: CheckpointWatcher in-process, then a real training subprocess with real watcher subprocesses."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kiln.evaluator.watcher import CheckpointWatcher, list_checkpoints

REPO = Path(__file__).resolve().parents[2]

TRAIN = """
custom_imports = dict(imports=['test_runner.toy'], allow_failed_imports=False)
model = dict(type='CellNet')
train_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='train', n_images=30, max_per_class=60, size=24),
                        sampler=dict(type='DefaultSampler', shuffle=True), batch_size=8)
train_cfg = dict(by_epoch=True, max_epochs=MAX_EPOCHS)  # no validation in the training run
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
randomness = dict(seed=0)
"""
VAL = """
_base_ = ['./train.py']
val_dataloader = dict(dataset=dict(type='BCCDCellCrops', split='val', n_images=10, size=24),
                      sampler=dict(type='DefaultSampler', shuffle=False), batch_size=16)
val_cfg = dict()
val_evaluator = dict(type='CellAccuracy')
"""


def _fake_run(work: Path, n: int, written: int | None = None) -> None:
    """``n`` checkpoint files epoch_1..n; last_checkpoint names epoch_<written or n>."""
    work.mkdir(parents=True, exist_ok=True)
    (work / '20260101_000000' / 'vis_data').mkdir(parents=True, exist_ok=True)
    (work / '20260101_000000' / 'vis_data' / 'scalars.json').touch()
    for i in range(1, n + 1):
        torch.save(dict(meta=dict(epoch=i, iter=10 * i)), work / f'epoch_{i}.pth')
    (work / 'last_checkpoint').write_text(str(work / f'epoch_{written or n}.pth'))


def _evaluator(scores, calls):
    def evaluate(path):
        meta = torch.load(path, weights_only=True)['meta']
        calls.append(Path(path).name)
        return {'acc': scores[meta['epoch']]}, meta
    return evaluate


def test_watcher_order_best_stop_and_restart_from_journal(tmp_path):
    work = tmp_path / 'work'
    _fake_run(work, 4, written=3)  # epoch_4.pth is not in last_checkpoint yet: never read
    assert list_checkpoints(str(work)) == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    scores, calls = {1: 10.0, 2: 30.0, 3: 20.0, 4: 25.0, 5: 29.0, 6: 40.0}, []
    w = CheckpointWatcher(str(work), _evaluator(scores, calls), stop_after_no_improvement=3, log=lambda s: None)
    assert w.run(interval=0.01, once=True) == 3
    assert calls == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    best = json.loads((work / 'eval_watch' / 'best.json').read_text())
    assert best['metric'] == 'acc' and best['score'] == 30.0 and best['epoch'] == 2
    assert os.readlink(work / 'eval_watch' / 'best_acc.pth') == os.path.join('..', 'epoch_2.pth')
    assert (work / 'eval_watch' / 'best_acc.pth').resolve() == (work / 'epoch_2.pth').resolve()

    # killed after the journal line of epoch_4 but before state.json was rewritten
    (work / 'last_checkpoint').write_text(str(work / 'epoch_4.pth'))
    state_before = (work / 'eval_watch' / 'state.json').read_text()
    w.poll()
    (work / 'eval_watch' / 'state.json').write_text(state_before)
    calls.clear()
    _fake_run(work, 5)  # (rewrites epoch_1..4 unchanged) epoch_5 appears
    w2 = CheckpointWatcher(str(work), _evaluator(scores, calls), stop_after_no_improvement=3, log=lambda s: None)
    assert w2.state.evaluated == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth', 'epoch_4.pth']  # replayed
    assert not (work / 'STOP').exists()
    w2.run(interval=0.01, once=True)
    assert calls == ['epoch_5.pth']  # nothing evaluated twice, nothing skipped
    assert (work / 'STOP').exists()  # 25, 29 and 20 did not beat 30: three evaluations without improvement
    assert 'acc' in json.loads((work / 'STOP').read_text())['reason']
    journal = [json.loads(x) for x in (work / 'eval_watch' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['checkpoint'] for r in journal] == [f'epoch_{i}.pth' for i in range(1, 6)]
    scalars = [json.loads(x) for x in (work / '20260101_000000' / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert [(s['step'], s['acc'], s['source']) for s in scalars] == [(i, scores[i], 'eval-watch') for i in range(1, 6)]


def test_watcher_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='rule'):
        CheckpointWatcher(str(tmp_path), lambda p: ({}, {}), rule='up')
    with pytest.raises(ValueError, match='stop_after_no_improvement'):
        CheckpointWatcher(str(tmp_path), lambda p: ({}, {}), stop_after_no_improvement=0)


def _kiln(*args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, '-m', 'kiln.cli', *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _journal(work: Path) -> list[dict]:
    path = work / 'eval_watch' / 'metrics.jsonl'
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith('}')]


def _wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)  # the test polls the subprocesses' files
    return False


def test_train_and_watch_in_subprocesses_with_restart_and_stop(tmp_path):
    max_epochs = 400
    (tmp_path / 'train.py').write_text(TRAIN.replace('MAX_EPOCHS', str(max_epochs)))
    (tmp_path / 'val.py').write_text(VAL)
    work = tmp_path / 'work'
    train = _kiln('train', 'train.py', '--work-dir', work, cwd=tmp_path)
    watch_args = ('eval-watch', work, '--config', 'val.py', '--interval', '0.2', '--metric', 'accuracy',
                  '--stop-after-no-improvement', '3', '--min-delta', '5', '--max-idle', '4')
    try:
        assert _wait(lambda: (work / 'last_checkpoint').exists(), 60)
        watcher = _kiln(*watch_args, cwd=tmp_path)
        assert _wait(lambda: len(_journal(work)) >= 2, 60), watcher.stdout and ''
        watcher.send_signal(signal.SIGKILL)  # mid-run: no chance to save anything
        watcher.wait(10)
        watcher = _kiln(*watch_args, cwd=tmp_path)
        out, _ = watcher.communicate(timeout=120)
        assert watcher.returncode == 0, out
        train_out, _ = train.communicate(timeout=60)
        assert train.returncode == 0, train_out
    finally:
        for p in (train, watcher):
            if p.poll() is None:
                p.kill()
    # the stop file ended training early, cleanly, with the last epoch's checkpoint saved
    assert (work / 'STOP').exists() and 'Stop file' in train_out
    epochs = sorted(int(p.stem.split('_')[1]) for p in work.glob('epoch_*.pth'))
    assert epochs == list(range(1, epochs[-1] + 1)) and epochs[-1] < max_epochs
    assert Path((work / 'last_checkpoint').read_text()).name == f'epoch_{epochs[-1]}.pth'
    # every checkpoint evaluated exactly once, in order, across the SIGKILL and restart
    journal = _journal(work)
    assert [r['checkpoint'] for r in journal] == [f'epoch_{e}.pth' for e in epochs]
    assert [r['epoch'] for r in journal] == epochs
    state = json.loads((work / 'eval_watch' / 'state.json').read_text())
    assert state['evaluated'] == [r['checkpoint'] for r in journal] and state['stop_written']
    # the metrics are merged into the training run's scalars.json, tagged with the checkpoint's epoch/iter
    (run_dir,) = [p for p in work.iterdir() if p.is_dir() and p.name[:8].isdigit()]
    lines = [json.loads(x) for x in (run_dir / 'vis_data' / 'scalars.json').read_text().splitlines()]
    merged = [x for x in lines if x.get('source') == 'eval-watch']
    assert [(m['epoch'], m['iter'], m['accuracy']) for m in merged] == [
        (r['epoch'], r['iter'], r['metrics']['accuracy']) for r in journal]
    assert all(0 <= m['accuracy'] <= 100 for m in merged)
    best = json.loads((work / 'eval_watch' / 'best.json').read_text())
    assert best['score'] == max(r['metrics']['accuracy'] for r in journal)
    assert (work / 'eval_watch' / 'best_accuracy.pth').resolve().name == Path(best['checkpoint']).name


def test_watcher_sends_metrics_to_the_config_trackers(tmp_path):
    """A real 2-epoch training run, then `kiln eval-watch --once` with a config naming TensorBoard and MLflow:
    both trackers get each checkpoint's metrics at its iteration, in a run of their own, read back with their
    own readers."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kiln.cli.main import main
    uri = f'sqlite:///{tmp_path / "mlflow.db"}'
    trackers = (f"visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), "
                f"dict(type='TensorboardVisBackend'), dict(type='MLflowVisBackend', exp_name='cells', "
                f"tracking_uri={uri!r})])\n")
    (tmp_path / 'train.py').write_text(TRAIN.replace('MAX_EPOCHS', '2').replace('n_images=30', 'n_images=6'))
    (tmp_path / 'val.py').write_text(VAL.replace('n_images=10', 'n_images=3') + trackers)
    work = tmp_path / 'work'
    train = _kiln('train', 'train.py', '--work-dir', work, cwd=tmp_path)
    out, _ = train.communicate(timeout=120)
    assert train.returncode == 0, out
    assert main(['eval-watch', str(work), '--config', str(tmp_path / 'val.py'), '--once',
                 '--metric', 'accuracy']) == 0
    journal = _journal(work)
    assert [r['checkpoint'] for r in journal] == ['epoch_1.pth', 'epoch_2.pth']
    iters = [r['iter'] for r in journal]
    assert iters[0] > 0 and iters[1] == 2 * iters[0]
    (run_dir,) = [p for p in work.iterdir() if p.is_dir() and p.name[:8].isdigit()]

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name('cells').experiment_id])
    assert run.info.run_name == f'{run_dir.name}-eval-watch' and run.info.status == 'FINISHED'
    acc = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, 'accuracy'))
    assert acc == [(i, pytest.approx(r['metrics']['accuracy'])) for i, r in zip(iters, journal)]
    epochs = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, 'epoch'))
    assert epochs == [(iters[0], 1.0), (iters[1], 2.0)]

    events = EventAccumulator(str(work / 'eval_watch' / f'{run_dir.name}-eval-watch' / 'vis_data'))
    events.Reload()
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars('accuracy')] == [
        (i, r['metrics']['accuracy']) for i, r in zip(iters, journal)]
    # the evaluation Runner itself kept its logs local: no second tracker run, no events at step 0
    assert [p.parent.parent.name for p in (work / 'eval_watch').glob('*/vis_data/events.*')] == [
        f'{run_dir.name}-eval-watch']
