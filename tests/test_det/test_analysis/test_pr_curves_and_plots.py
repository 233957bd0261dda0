"""pr_curves agree with what CocoMetric reports; write_analysis / DetAnalysisHook write valid, non-trivial PNGs
and JSON (real BCCD ground truth, predictions made from it)."""
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from kiln.det.engine.hooks import DetAnalysisHook
from kiln.det.evaluation import CocoMetric
from kiln.det.evaluation.analysis import (confusion_matrix, gt_from_sample, image_ap, pr_curves,
                                          pred_from_sample, write_analysis)
from kiln.det.structures import DetDataSample
from kiln.det.visualization.plots import plot_scalar_curves
from kiln.structures import InstanceData
from test_det.test_analysis.analysis_data import CLASSES, gt_arrays, perturbed_samples


@pytest.fixture(scope='module')
def samples(bccd_test):
    return perturbed_samples(bccd_test, seed=0)


def _pairs(samples):
    return [gt_from_sample(s) for s in samples], [pred_from_sample(s) for s in samples]


def _assert_png(path, min_size=(300, 300), min_colours=30):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == 'PNG' and im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        arr = np.asarray(im.convert('RGB'))
    packed = (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8) | arr[..., 2]
    assert len(np.unique(packed)) >= min_colours  # lines, text, colour map: not blank
    assert arr.std() > 10


def test_curves_match_the_reported_map_and_recall(samples):
    gts, preds = _pairs(samples)
    metric = CocoMetric(classwise=True)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, samples)
    reported = metric.compute_metrics(metric.results)
    curves = pr_curves(gts, preds, CLASSES, iou_thr=0.5)
    assert curves['precision'].shape == (3, 101) and curves['recall'].shape == (101,)
    assert round(float(curves['ap'].mean()), 3) == reported['bbox_mAP_50']
    assert curves['num_gts'].tolist() == [sum(int((gt_arrays({'instances': s['instances']})[1] == k).sum())
                                              for s in samples) for k in range(3)]
    for k in range(3):
        p = curves['precision'][k]
        last = int(np.flatnonzero(p > 0)[-1])
        # the curve ends at the largest recall point the detections reach
        assert curves['recall'][last] <= curves['max_recall'][k] + 1e-9 < curves['recall'][last] + 0.01
        assert np.all(p[last + 1:] == 0) and np.all(np.diff(p[:last + 1]) <= 1e-12)  # interpolated: monotone
        assert 0 < curves['max_recall'][k] < 1  # 10 % of the boxes were dropped
    # AP at IoU 0.5:0.95 of the curves at each threshold averages to the reported mAP
    per_iou = [np.nanmean(pr_curves(gts, preds, CLASSES, iou_thr=t)['ap']) for t in np.linspace(0.5, 0.95, 10)]
    assert round(float(np.mean(per_iou)), 3) == reported['bbox_mAP']


def test_ground_truth_as_predictions_gives_perfect_curves(bccd_test):
    gts = [gt_from_sample(r) for r in bccd_test[:10]]
    preds = [dict(bboxes=g['bboxes'], scores=np.ones(len(g['labels'])), labels=g['labels']) for g in gts]
    for backend in ('pycocotools', 'faster_coco_eval'):
        curves = pr_curves(gts, preds, CLASSES, backend=backend)
        np.testing.assert_allclose(curves['precision'], 1.0)
        np.testing.assert_allclose(curves['max_recall'], 1.0)
    assert image_ap(gts[0], preds[0], CLASSES) == 1.0
    assert image_ap(gts[0], dict(bboxes=np.zeros((0, 4)), scores=[], labels=[]), CLASSES) == 0.0


def test_write_analysis_files(samples, tmp_path):
    gts, preds = _pairs(samples[:24])
    paths = write_analysis(gts, preds, CLASSES, tmp_path / 'analysis', score_thr=0.3, tp_iou_thr=0.5)
    assert sorted(p.name for p in (tmp_path / 'analysis').iterdir()) == [
        'confusion_matrix.json', 'confusion_matrix.png', 'pr_curves.json', 'pr_curves.png']
    _assert_png(paths['pr_curves'])
    _assert_png(paths['confusion_matrix'])
    cm = json.loads((tmp_path / 'analysis' / 'confusion_matrix.json').read_text())
    assert cm['classes'] == [*CLASSES, 'background'] and cm['score_thr'] == 0.3
    np.testing.assert_array_equal(cm['matrix'], confusion_matrix(gts, preds, 3, 0.3, 0.5))
    pr = json.loads((tmp_path / 'analysis' / 'pr_curves.json').read_text())
    assert len(pr['precision']) == 3 and len(pr['precision'][0]) == 101
    assert 0 < np.mean(pr['ap']) < 1 and pr['recall'][-1] == 1.0


def test_scalar_curves_png(tmp_path):
    x = np.arange(1, 201)
    out = plot_scalar_curves([dict(key='loss', label='run a', x=x, y=1 / x, xlabel='iter'),
                              dict(key='loss', label='run b', x=x, y=2 / x, xlabel='iter'),
                              dict(key='coco/bbox_mAP', label='run a', x=[1, 2, 3], y=[.1, .2, .3], xlabel='epoch')],
                             tmp_path / 'c.png')
    _assert_png(out, min_colours=10)
    with pytest.raises(ValueError, match='nothing to plot'):
        plot_scalar_curves([], tmp_path / 'd.png')


def test_hook_writes_analysis_after_test(samples, tmp_path):
    """DetAnalysisHook fed the test loop's data samples (DetDataSample, batches of 8) writes into
    <log_dir>/analysis the same matrix as confusion_matrix on those samples."""
    samples = samples[:16]
    hook = DetAnalysisHook(score_thr=0.5)
    logger = logging.getLogger('test_det_analysis_hook')
    runner = SimpleNamespace(log_dir=str(tmp_path / '20260101_000000'), logger=logger,
                             test_loop=SimpleNamespace(
                                 dataloader=SimpleNamespace(dataset=list(range(len(samples)))),
                                 evaluator=SimpleNamespace(dataset_meta=dict(classes=CLASSES))))
    hook.before_test_epoch(runner)
    for k in range(0, len(samples), 8):
        batch = []
        for s in samples[k:k + 8]:
            ds = DetDataSample(metainfo={m: s[m] for m in ('img_id', 'img_path', 'ori_shape', 'instances')})
            ds.pred_instances = InstanceData(**s['pred_instances'])
            batch.append(ds)
        hook.after_test_iter(runner, k // 8, None, batch)
    hook.after_test_epoch(runner, {})
    out = tmp_path / '20260101_000000' / 'analysis'
    _assert_png(out / 'pr_curves.png')
    _assert_png(out / 'confusion_matrix.png')
    gts, preds = _pairs(samples)
    cm = json.loads((out / 'confusion_matrix.json').read_text())
    np.testing.assert_array_equal(cm['matrix'], confusion_matrix(gts, preds, 3, score_thr=0.5))
    assert not (out / 'val').exists()  # val=False: validation is not analysed
    hook.after_val_iter(runner, 0, None, [])
    hook.after_val_epoch(runner, {})
    assert not (out / 'val').exists()
    with pytest.raises(ValueError, match='score_thr must be in'):
        DetAnalysisHook(score_thr=3)


def test_hook_without_ground_truth_warns_and_writes_nothing(samples, tmp_path, caplog):
    hook = DetAnalysisHook()
    logger = logging.getLogger('test_det_analysis_hook_nogt')
    runner = SimpleNamespace(log_dir=str(tmp_path), logger=logger,
                             test_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=[0, 1]),
                                                       evaluator=SimpleNamespace(dataset_meta=dict(classes=CLASSES))))
    batch = []
    for s in samples[:2]:  # images without annotations (e.g. a challenge test split)
        ds = DetDataSample(metainfo=dict(img_id=s['img_id'], ori_shape=s['ori_shape']))
        ds.pred_instances = InstanceData(**s['pred_instances'])
        batch.append(ds)
    hook.before_test_epoch(runner)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        hook.after_test_iter(runner, 0, None, batch)
        hook.after_test_epoch(runner, {})
    assert 'DetAnalysisHook: no analysis for this run' in caplog.text and 'neither "instances"' in caplog.text
    assert not (tmp_path / 'analysis').exists()


def test_hook_val_option_writes_analysis_val(samples, tmp_path):
    hook = DetAnalysisHook(val=True, test=False)
    runner = SimpleNamespace(log_dir=str(tmp_path), logger=logging.getLogger('test_det_analysis_hook_val'),
                             val_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=[0] * 8),
                                                      evaluator=SimpleNamespace(dataset_meta=dict(classes=CLASSES))))
    batch = []
    for s in samples[:8]:
        ds = DetDataSample(metainfo={m: s[m] for m in ('img_id', 'img_path', 'ori_shape', 'instances')})
        ds.pred_instances = InstanceData(**s['pred_instances'])
        batch.append(ds)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, batch)
    hook.after_test_iter(runner, 0, None, batch)  # test=False: ignored
    hook.after_val_epoch(runner, {})
    cm = json.loads((tmp_path / 'analysis' / 'val' / 'confusion_matrix.json').read_text())
    gts, preds = _pairs(samples[:8])
    np.testing.assert_array_equal(cm['matrix'], confusion_matrix(gts, preds, 3))
