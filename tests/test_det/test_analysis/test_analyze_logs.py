"""kiln analyze-logs on the scalars.json of real short training runs (the BCCD cell-crop toy of test_runner)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kiln.cli._common import CLIError
from kiln.det.cli.analyze_logs import cal_train_time, curve_series, find_scalars, load_scalars
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

REPO = Path(__file__).resolve().parents[3]


def _kiln(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'kiln.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two 3-epoch runs (6 iterations per epoch, logged every 2) with different learning rates."""
    out = []
    for name, lr in (('run_a', 0.1), ('run_b', 0.02)):
        wd = tmp_path_factory.mktemp(name)
        kw = runner_kwargs(wd, max_epochs=3)
        kw['optim_wrapper'] = dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9))
        Runner(**kw).train()
        out.append(wd)
    return out


def test_reads_kiln_scalars_format(runs):
    path = find_scalars(str(runs[0]))
    assert path.endswith(os.path.join('vis_data', 'scalars.json'))
    records = load_scalars(path)
    train = [r for r in records if 'iter' in r]
    assert [r['iter'] for r in train] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    loss = curve_series(records, 'loss', 'a')
    assert loss['xlabel'] == 'iter' and loss['x'] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert loss['y'] == [r['loss'] for r in train]
    acc = curve_series(records, 'accuracy', 'a')  # a validation metric, logged per epoch
    assert acc['xlabel'] == 'epoch' and acc['x'] == [1, 2, 3] and all(0 <= v <= 100 for v in acc['y'])
    time = curve_series(records, 'time', 'a')  # in train and val lines: the training values
    assert time['x'] == loss['x']
    with pytest.raises(CLIError, match="key 'bbox_mAP' is not in the log.*accuracy.*loss"):
        curve_series(records, 'bbox_mAP', 'a')


def test_cal_train_time_by_hand(runs):
    records = load_scalars(find_scalars(str(runs[0])))
    times = {e: [r['time'] for r in records if 'iter' in r and r['epoch'] == e] for e in (1, 2, 3)}
    means = {e: float(np.mean(t[1:])) for e, t in times.items()}  # first value of each epoch dropped
    res = cal_train_time(records)
    assert res['epoch_mean'] == pytest.approx(means)
    assert res['slowest_epoch'] == max(means, key=means.get)
    assert res['fastest_epoch'] == min(means, key=means.get)
    assert res['mean_iter_time'] == pytest.approx(np.mean([v for t in times.values() for v in t[1:]]))
    assert res['std_over_epochs'] == pytest.approx(np.std(list(means.values())))
    with_outliers = cal_train_time(records, include_outliers=True)
    assert with_outliers['mean_iter_time'] == pytest.approx(np.mean([v for t in times.values() for v in t]))


def test_iteration_based_log(tmp_path):
    """Crafted lines of an iteration-based run (no epoch; metrics at iteration steps)."""
    lines = [dict(lr=0.01, loss=2.0 - i / 10, time=0.5 + i / 100, iter=i * 10, step=i * 10) for i in range(1, 6)]
    lines.insert(3, {'coco/bbox_mAP': 0.25, 'time': 0.1, 'step': 30})
    lines.append({'coco/bbox_mAP': 0.4, 'time': 0.1, 'step': 50})
    path = tmp_path / 'scalars.json'
    path.write_text(''.join(json.dumps(r) + '\n' for r in lines))
    records = load_scalars(str(path))
    m = curve_series(records, 'coco/bbox_mAP', 'x')
    assert m['x'] == [30, 50] and m['xlabel'] == 'iter' and m['y'] == [0.25, 0.4]
    res = cal_train_time(records)
    assert list(res['epoch_mean']) == [1] and res['mean_iter_time'] == pytest.approx(np.mean([.52, .53, .54, .55]))
    path.write_text('{"loss": 1}\nnot json\n')
    with pytest.raises(CLIError, match=r'scalars.json:2: not a JSON line'):
        load_scalars(str(path))


def test_cli_plot_curve_two_runs(runs, tmp_path):
    out = tmp_path / 'curves.png'
    r = _kiln('analyze-logs', 'plot-curve', runs[0], runs[1], '--keys', 'loss', 'accuracy', '--out', out,
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'saved to' in r.stdout
    with Image.open(out) as im:
        assert im.format == 'PNG' and im.size[1] >= im.size[0] * 0.75  # two stacked subplots
        arr = np.asarray(im.convert('RGB'))
    # both runs are drawn: matplotlib's first two line colours (C0 blue, C1 orange) are present
    assert (np.abs(arr.astype(int) - [31, 119, 180]).sum(-1) < 30).sum() > 50
    assert (np.abs(arr.astype(int) - [255, 127, 14]).sum(-1) < 30).sum() > 50


def test_cli_cal_train_time_and_errors_in_process(runs, tmp_path, capsys):
    """The same entry point in-process (kiln.cli.main.main): output lines and exit status 2 on a user error."""
    from kiln.cli.main import main
    assert main(['analyze-logs', 'cal-train-time', str(runs[0])]) == 0
    out = capsys.readouterr().out
    res = cal_train_time(load_scalars(find_scalars(str(runs[0]))))
    assert f'slowest epoch {res["slowest_epoch"]}, average time is {res["slowest_time"]:.4f}' in out
    assert f'fastest epoch {res["fastest_epoch"]}, average time is {res["fastest_time"]:.4f}' in out
    assert f'average iter time: {res["mean_iter_time"]:.4f} s/iter' in out
    assert main(['analyze-logs', 'plot-curve', str(runs[0]), '--keys', 'coco/bbox_mAP',
                 '--out', str(tmp_path / 'x.png')]) == 2
    assert "key 'coco/bbox_mAP' is not in the log" in capsys.readouterr().err
    with pytest.raises(CLIError, match='does not exist'):
        find_scalars(str(tmp_path / 'nowhere'))
