import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kiln.det.datasets import VOCDataset
from kiln.det.evaluation import CocoMetric
from kiln.det.structures import DetDataSample
from kiln.evaluator import Evaluator
from kiln.registry import METRICS
from kiln.structures import InstanceData

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')


@pytest.fixture(scope='module')
def records() -> list[dict]:
    ds = VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                    metainfo=dict(classes=CLASSES), test_mode=True)
    return [ds.get_data_info(i) for i in range(len(ds))]


def _gt_arrays(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([i['bbox'] for i in rec['instances']], dtype=np.float32).reshape(-1, 4)
    labels = np.array([i['bbox_label'] for i in rec['instances']], dtype=np.int64)
    return boxes, labels


def _samples(records, predict) -> list[dict]:
    """Data samples as the Evaluator passes them (``to_dict()``); ``predict(i, rec)`` -> boxes, scores, labels."""
    out = []
    for i, rec in enumerate(records):
        boxes, scores, labels = predict(i, rec)
        sample = DetDataSample(metainfo=dict(img_id=rec['img_id'], ori_shape=(rec['height'], rec['width']),
                                             instances=rec['instances']))
        sample.pred_instances = InstanceData(bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                             scores=torch.as_tensor(scores, dtype=torch.float32),
                                             labels=torch.as_tensor(labels, dtype=torch.int64))
        out.append(sample.to_dict())
    return out


def _run(metric: CocoMetric, samples: list[dict], batch: int = 8) -> dict:
    metric.dataset_meta = dict(classes=CLASSES)
    for k in range(0, len(samples), batch):
        metric.process(None, samples[k:k + batch])
    return metric.compute_metrics(metric.results)


def _direct_stats(records, samples, cat_ids=None) -> np.ndarray:
    """pycocotools straight from the VOC records, independent of CocoMetric."""
    images, anns, dets = [], [], []
    for n, rec in enumerate(records):
        images.append(dict(id=n, width=rec['width'], height=rec['height']))
        for inst in rec['instances']:
            x1, y1, x2, y2 = inst['bbox']
            anns.append(dict(id=len(anns) + 1, image_id=n, category_id=inst['bbox_label'] + 1,
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
        pred = samples[n]['pred_instances']
        for (x1, y1, x2, y2), s, l in zip(pred['bboxes'].tolist(), pred['scores'].tolist(), pred['labels'].tolist()):
            dets.append(dict(image_id=n, bbox=[x1, y1, x2 - x1, y2 - y1], score=s, category_id=l + 1))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(images=images, annotations=anns,
                          categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)])
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_predictions_equal_to_gt_give_map_1(records):
    def perfect(i, rec):
        boxes, labels = _gt_arrays(rec)
        return boxes, np.ones(len(boxes)), labels
    samples = _samples(records, perfect)
    res = _run(METRICS.build(dict(type='CocoMetric')), samples)
    assert set(res) == {'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l'}
    assert res['bbox_mAP'] == res['bbox_mAP_50'] == res['bbox_mAP_75'] == 1.0
    assert all(v in (1.0, -1.0) for v in res.values())  # -1: no gt of that size


def test_shifted_boxes_give_the_known_lower_value(records):
    # Shifting every box right by 10 % of its width gives IoU = 0.9 / 1.1 = 0.818 with its gt: matched at IoU
    # thresholds 0.50 ... 0.80 (7 of 10), so mAP ~= 0.7 while mAP_50 and mAP_75 stay at 1.
    def shifted(i, rec):
        boxes, labels = _gt_arrays(rec)
        dx = 0.1 * (boxes[:, 2] - boxes[:, 0])
        boxes = boxes + np.stack([dx, 0 * dx, dx, 0 * dx], 1)
        return boxes, np.linspace(1.0, 0.5, len(boxes)), labels
    samples = _samples(records, shifted)
    res = _run(CocoMetric(), samples)
    assert res['bbox_mAP_50'] == 1.0 and res['bbox_mAP_75'] >= 0.99
    assert res['bbox_mAP'] == pytest.approx(0.7, abs=0.01)
    direct = _direct_stats(records, samples)
    assert res['bbox_mAP'] == round(direct[0], 3) and res['bbox_mAP_75'] == round(direct[2], 3)


def test_noisy_predictions_match_pycocotools_exactly(records):
    rng = np.random.RandomState(0)

    def noisy(i, rec):
        if i % 5 == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0)  # images without any prediction
        boxes, labels = _gt_arrays(rec)
        boxes = boxes + rng.normal(0, 6, boxes.shape)
        labels = np.where(rng.rand(len(labels)) < 0.1, rng.randint(0, 3, len(labels)), labels)
        fp = rng.uniform(0, 400, (3, 2))
        fp = np.concatenate([fp, fp + rng.uniform(10, 200, (3, 2))], 1)
        return (np.concatenate([boxes, fp]), rng.rand(len(boxes) + 3),
                np.concatenate([labels, rng.randint(0, 3, 3)]))
    samples = _samples(records, noisy)
    res = _run(CocoMetric(), samples)
    direct = _direct_stats(records, samples)
    names = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l']
    assert [res[k] for k in names] == [float(f'{v:.3f}') for v in direct[:6]]
    assert 0.2 < res['bbox_mAP'] < 0.95


def test_no_prediction_at_all_gives_zero(records, caplog):
    samples = _samples(records[:4], lambda i, rec: (np.zeros((0, 4)), np.zeros(0), np.zeros(0)))
    logger = logging.getLogger('test_coco_metric.empty')
    with caplog.at_level(logging.WARNING, logger=logger.name):
        res = _run(CocoMetric(classwise=True, logger=logger), samples)
    assert res['bbox_mAP'] == res['bbox_mAP_50'] == 0.0 and res['RBC_precision'] == 0.0
    assert 'no prediction' in caplog.text


def test_classwise_table_and_per_class_ap(records, caplog):
    rng = np.random.RandomState(1)

    def noisy(i, rec):
        boxes, labels = _gt_arrays(rec)
        return boxes + rng.normal(0, 8, boxes.shape), rng.rand(len(boxes)), labels
    samples = _samples(records, noisy)
    logger = logging.getLogger('test_coco_metric.classwise')
    with caplog.at_level(logging.INFO, logger=logger.name):
        res = _run(CocoMetric(classwise=True, logger=logger), samples)
    for k, name in enumerate(CLASSES):
        direct = _direct_stats(records, samples, cat_ids=[k + 1])
        assert res[f'{name}_precision'] == round(direct[0], 3)
    text = caplog.text
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95' in text  # COCOeval's summary went to the logger
    assert 'category' in text and 'mAP_50' in text and 'Platelets' in text
    assert 'bbox_mAP_copypaste' in text


def _write_coco_gt(records, path: Path) -> None:
    images, anns = [], []
    for n, rec in enumerate(records):
        images.append(dict(id=1000 + n, file_name=f'{rec["img_id"]}.jpg', width=rec['width'], height=rec['height']))
        for inst in rec['instances']:
            x1, y1, x2, y2 = inst['bbox']
            anns.append(dict(id=len(anns) + 1, image_id=1000 + n, category_id=[5, 9, 2][inst['bbox_label']],
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    cats = [dict(id=2, name='Platelets'), dict(id=5, name='RBC'), dict(id=9, name='WBC')]
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))


def test_ann_file_gives_the_same_result_and_format_only(records, tmp_path):
    rng = np.random.RandomState(2)
    preds = []
    for rec in records:
        boxes, labels = _gt_arrays(rec)
        preds.append((boxes + rng.normal(0, 5, boxes.shape), rng.rand(len(boxes)), labels))
    samples = _samples(records, lambda i, rec: preds[i])
    without = _run(CocoMetric(), samples)
    ann = tmp_path / 'gt.json'
    _write_coco_gt(records, ann)
    for n, s in enumerate(samples):
        s['img_id'] = 1000 + n
    with_file = _run(CocoMetric(ann_file=str(ann)), samples)
    assert with_file == without

    prefix = tmp_path / 'out' / 'results'
    assert _run(CocoMetric(ann_file=str(ann), format_only=True, outfile_prefix=str(prefix)), samples) == {}
    dets = json.loads((tmp_path / 'out' / 'results.bbox.json').read_text())
    assert len(dets) == sum(len(p[2]) for p in preds)
    first = dets[0]
    x1, y1, x2, y2 = preds[0][0][0]
    assert first['image_id'] == 1000 and first['category_id'] == [5, 9, 2][preds[0][2][0]]
    np.testing.assert_allclose(first['bbox'], [x1, y1, x2 - x1, y2 - y1], rtol=1e-5)  # xywh
    with pytest.raises(ValueError, match='format_only'):
        CocoMetric(format_only=True)
    bad = [dict(s, img_id=5) for s in samples[:1]]
    with pytest.raises(ValueError, match=r'img_id \[5\].*gt\.json'):
        _run(CocoMetric(ann_file=str(ann)), bad)


def test_through_the_evaluator_with_data_samples(records):
    evaluator = Evaluator(dict(type='CocoMetric', metric_items=['mAP', 'mAP_50', 'AR@100']))
    evaluator.dataset_meta = dict(classes=CLASSES)
    batch = []
    for rec in records[:6]:
        boxes, labels = _gt_arrays(rec)
        s = DetDataSample(metainfo=dict(img_id=rec['img_id'], ori_shape=(480, 640), instances=rec['instances']))
        s.pred_instances = InstanceData(bboxes=torch.from_numpy(boxes), scores=torch.ones(len(boxes)),
                                        labels=torch.from_numpy(labels))
        batch.append(s)
    evaluator.process(batch[:3])
    evaluator.process(batch[3:])
    res = evaluator.evaluate(6)
    assert res == {'coco/bbox_mAP': 1.0, 'coco/bbox_mAP_50': 1.0, 'coco/bbox_AR@100': 1.0}


def test_bad_arguments():
    with pytest.raises(KeyError, match='proposal_fast'):
        CocoMetric(metric='proposal_fast')
    with pytest.raises(KeyError, match='keypoints'):
        CocoMetric(metric=['bbox', 'keypoints'])
    with pytest.raises(ValueError, match='proposal_nums'):
        CocoMetric(proposal_nums=(100, 10, 1))
    with pytest.raises(KeyError, match='mAP_99'):
        CocoMetric(metric_items=['mAP_99'])
    metric = CocoMetric()
    with pytest.raises(ValueError, match='instances'):
        metric.process(None, [dict(img_id=1, ori_shape=(4, 4), pred_instances=dict(
            bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long)))])
