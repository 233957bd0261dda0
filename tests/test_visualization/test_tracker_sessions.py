"""Tracker backends from one config line in a real (short) Runner run, across runner.new_session(), rank 0 only."""
import glob

from kiln.config import Config
from kiln.runner import Runner
from kiln.runner.builders import build_visualizer
from test_runner.toy import runner_kwargs


def test_tensorboard_and_mlflow_across_new_session(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written to the current directory (checked below)
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f'sqlite:///{tmp_path / "mlflow.db"}'  # one store for both sessions, to compare them
    vis = dict(type='Visualizer', vis_backends=[dict(type='TensorboardVisBackend'),
                                                dict(type='MLflowVisBackend', exp_name='cells', tracking_uri=uri)])
    kwargs = runner_kwargs(tmp_path / 'work', max_epochs=2, visualizer=vis)
    kwargs['default_hooks'] = dict(logger=dict(type='LoggerHook', interval=1),
                                   checkpoint=dict(type='CheckpointHook', interval=1, save_best='accuracy'))
    runner = Runner(**kwargs, cfg=Config({k: v for k, v in kwargs.items() if k != 'visualizer'}))
    runner.train()
    first = runner.log_dir
    runner.new_session(name='second')
    runner.train()
    second = runner.log_dir
    runner.close()
    assert first != second
    n_iters = 2 * len(runner.train_dataloader)

    for log_dir in (first, second):  # each session has its own TensorBoard run with the whole training
        acc = EventAccumulator(f'{log_dir}/vis_data')
        acc.Reload()
        assert [e.step for e in acc.Scalars('loss')] == list(range(1, n_iters + 1))
        assert [e.step for e in acc.Scalars('accuracy')] == [1, 2]
        assert 'config/text_summary' in acc.Tags()['tensors']

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name('cells')
    runs = client.search_runs([exp.experiment_id], order_by=['attributes.start_time ASC'])
    assert [r.info.run_name for r in runs] == [first.rsplit('/', 1)[1], second.rsplit('/', 1)[1]]
    for run in runs:
        assert run.info.status == 'FINISHED'
        assert run.data.params['model.type'] == 'CellNet'
        loss = client.get_metric_history(run.info.run_id, 'loss')
        assert sorted(m.step for m in loss) == list(range(1, n_iters + 1))
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, 'accuracy')) == [1, 2]
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {'config.py', 'checkpoints'} <= arts
        best = [a.path for a in client.list_artifacts(run.info.run_id, 'checkpoints')]
        assert len(best) == 1 and best[0].startswith('checkpoints/best_accuracy_')
    assert len(glob.glob(str(tmp_path / 'work' / 'best_accuracy_*.pth'))) == 1
    assert (tmp_path / 'artifacts').is_dir() and not (tmp_path / 'mlruns').exists()  # beside mlflow.db


def test_other_ranks_build_no_tracker(tmp_path, monkeypatch):
    import kiln.dist
    monkeypatch.setattr(kiln.dist, 'is_main_process', lambda: False)
    vis = build_visualizer(dict(type='Visualizer', vis_backends=[dict(type='MLflowVisBackend'),
                                                                 dict(type='WandbVisBackend')]), 'x', str(tmp_path))
    assert vis.vis_backends == {}
    vis.add_scalars({'loss': 1.0}, step=1)
    vis.close()
    assert list(tmp_path.iterdir()) == []
