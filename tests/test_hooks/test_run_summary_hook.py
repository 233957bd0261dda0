"""RunSummaryHook: plots and results.csv written at the end of a real (tiny) BCCD run."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kiln.config import Config
from kiln.hooks import RunSummaryHook
from kiln.runner import Runner
from test_runner.toy import runner_kwargs

REPO = Path(__file__).resolve().parents[2]


def _png_ok(path: Path, min_colors: int = 10) -> np.ndarray:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        arr = np.asarray(im.convert('RGB'))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) >= min_colors  # drawn, not a blank canvas
    return arr


def test_train_run_writes_plots_and_csv_equal_to_logged_metrics(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=3, val_cfg=dict(compute_loss=True),
                                    custom_hooks=[dict(type='RunSummaryHook')]))
    runner.train()
    plots = Path(runner.log_dir) / 'plots'
    arr = _png_ok(plots / 'summary.png')
    # 3 loss/lr panels + accuracy + 2 val loss panels -> a 2-row grid of 4 columns
    assert arr.shape[1] > arr.shape[0]
    assert not (plots / 'per_class_ap.png').exists()  # no classwise keys in this task

    lines = [json.loads(x) for x in (Path(runner.log_dir) / 'vis_data' / 'scalars.json').read_text().splitlines()]
    logged = [x for x in lines if 'accuracy' in x]
    with open(plots / 'results.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(logged) == 3
    assert list(rows[0]) == ['mode', 'epoch', 'iter', 'accuracy', 'val/loss_cls', 'val/loss']
    n_batches = len(runner.train_dataloader)
    for i, (row, log) in enumerate(zip(rows, logged), start=1):
        assert row['mode'] == 'val' and int(row['epoch']) == i == log['step']
        assert int(row['iter']) == i * n_batches
        for key in ('accuracy', 'val/loss_cls', 'val/loss'):
            assert float(row[key]) == pytest.approx(log[key], rel=1e-12)


def test_test_run_writes_csv_and_per_class_chart(tmp_path):
    hook = RunSummaryHook()
    hook.rows = [dict(mode='test', epoch=0, iter=0, **{'coco/bbox_mAP': 0.4, 'coco/bbox_RBC_precision': 0.5,
                                                         'coco/bbox_WBC_precision': 0.9,
                                                         'coco/bbox_Platelets_precision': 0.2})]
    out = hook.plot_per_class(str(tmp_path / 'per_class_ap.png'))
    assert out is not None
    _png_ok(Path(out))
    assert hook._metric_keys() == ['coco/bbox_mAP']  # per-class keys are not plotted as curves
    # a real `Runner.test` run goes through after_test_epoch -> after_run
    kwargs = runner_kwargs(tmp_path / 'wd', val=False, custom_hooks=[dict(type='RunSummaryHook')])
    from test_runner.toy import loader_cfg
    kwargs.update(test_dataloader=loader_cfg('val', shuffle=False), test_cfg=dict(),
                  test_evaluator=dict(type='CellAccuracy'))
    runner = Runner(**kwargs)
    metrics = runner.test()
    with open(Path(runner.log_dir) / 'plots' / 'results.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]['mode'] == 'test'
    assert float(rows[0]['accuracy']) == pytest.approx(metrics['accuracy'])


def test_state_dict_round_trip_and_errors():
    hook = RunSummaryHook()
    hook.rows = [dict(mode='val', epoch=1, iter=5, acc=1.0)]
    other = RunSummaryHook()
    other.load_state_dict(hook.state_dict())
    assert other.rows == hook.rows
    with pytest.raises(ValueError, match='name'):
        RunSummaryHook(class_key_regex='_precision$')
    with pytest.raises(ValueError, match='max_panels'):
        RunSummaryHook(max_panels=0)


def test_detection_default_runtime_enables_it():
    cfg = Config.fromfile(REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py')
    assert cfg.default_hooks['run_summary']['type'] == 'RunSummaryHook'


def test_earlystop_example_config_builds_the_hook_and_val_loss_is_default(tmp_path):
    cfg = Config.fromfile(REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd_earlystop.py')
    assert cfg.val_cfg == dict(type='ValLoop', compute_loss=True)  # from configs/_base_/schedules/schedule_1x.py
    assert cfg.train_cfg['val_interval'] == 1 and cfg.train_cfg['max_epochs'] == 24
    from kiln.hooks import EarlyStoppingHook
    from kiln.registry import HOOKS
    (hook_cfg,) = cfg.custom_hooks
    hook = HOOKS.build(hook_cfg)
    assert isinstance(hook, EarlyStoppingHook)
    assert (hook.monitor, hook.rule, hook.min_delta, hook.patience) == ('coco/bbox_mAP', 'greater', 0.005, 3)
