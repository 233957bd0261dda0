"""CocoMetric 'segm' and 'proposal' on the real balloon val annotations (COCO polygons), checked against a direct
pycocotools COCOeval on the same json."""
import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kiln.det.evaluation import CocoMetric
from kiln.det.structures import DetDataSample
from kiln.evaluator import Evaluator
from kiln.structures import InstanceData

REPO = Path(__file__).parents[3]
BALLOON_VAL = REPO.parent / 'shared' / 'data' / 'balloon' / 'annotations' / 'instances_val.json'
CLASSES = ('balloon',)

pytestmark = pytest.mark.skipif(not BALLOON_VAL.exists(), reason='shared balloon data not beside the repo')


@pytest.fixture(scope='module')
def coco() -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(BALLOON_VAL))


@pytest.fixture(scope='module')
def gt_masks(coco) -> dict:
    """img_id -> (boxes xyxy (N, 4), masks bool (N, H, W), anns) decoded from the json polygons."""
    out = {}
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in anns], dtype=np.float32).reshape(-1, 4)
        masks = np.stack([coco.annToMask(a).astype(bool) for a in anns])
        out[img_id] = (boxes, masks, anns)
    return out


def _sample(coco, img_id, boxes, masks, scores, labels=None, with_instances=False) -> dict:
    info = coco.imgs[img_id]
    meta = dict(img_id=img_id, ori_shape=(info['height'], info['width']))
    if with_instances:  # the dataset records' annotations, as MMDetection's CocoDataset writes them
        meta['instances'] = [dict(bbox=[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                        a['bbox'][1] + a['bbox'][3]],
                                  bbox_label=0, ignore_flag=a['iscrowd'], mask=copy.deepcopy(a['segmentation']))
                             for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))]
    s = DetDataSample(metainfo=meta)
    labels = np.zeros(len(boxes), dtype=np.int64) if labels is None else labels
    s.pred_instances = InstanceData(bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                    scores=torch.as_tensor(scores, dtype=torch.float32),
                                    labels=torch.as_tensor(labels, dtype=torch.int64),
                                    masks=torch.from_numpy(masks))
    return s.to_dict()


def _run(metric: CocoMetric, samples: list) -> dict:
    metric.dataset_meta = dict(classes=CLASSES)
    for k in range(0, len(samples), 4):
        metric.process(None, samples[k:k + 4])
    return metric.compute_metrics(metric.results)


def _perturbed_samples(coco, gt_masks, seed=0, with_instances=False) -> list:
    """Each gt mask shifted right by 4-12 % of its box width (IoU ~0.8-0.9), random scores, plus one false
    positive per image (a square mask in a corner)."""
    rng = np.random.RandomState(seed)
    samples = []
    for img_id, (boxes, masks, _) in gt_masks.items():
        new_masks = []
        for box, m in zip(boxes, masks):
            dx = int(round(rng.uniform(0.04, 0.12) * (box[2] - box[0])))
            shifted = np.zeros_like(m)
            shifted[:, dx:] = m[:, :m.shape[1] - dx]
            new_masks.append(shifted)
        fp = np.zeros_like(masks[0])
        fp[:60, :60] = True
        new_masks.append(fp)
        new_boxes = np.concatenate([boxes, [[0, 0, 60, 60]]]).astype(np.float32)
        samples.append(_sample(coco, img_id, new_boxes, np.stack(new_masks), rng.rand(len(new_boxes)),
                               with_instances=with_instances))
    return samples


def _direct(coco, samples, iou_type='segm', use_cats=True, max_dets=(100, 300, 1000)) -> np.ndarray:
    """COCOeval straight on the json, results encoded here independently of CocoMetric."""
    dets = []
    for s in samples:
        pred = s['pred_instances']
        for box, score, m in zip(pred['bboxes'].tolist(), pred['scores'].tolist(), pred['masks'].numpy()):
            d = dict(image_id=s['img_id'], category_id=1, score=score)
            if iou_type == 'segm':
                d['segmentation'] = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            else:
                d['bbox'] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            dets.append(d)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dets), iou_type)
        ev.params.maxDets = list(max_dets)
        ev.params.useCats = int(use_cats)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_ground_truth_as_predictions_gives_segm_map_1(coco, gt_masks):
    samples = [_sample(coco, i, b, m, np.ones(len(b))) for i, (b, m, _) in gt_masks.items()]
    evaluator = Evaluator(dict(type='CocoMetric', ann_file=str(BALLOON_VAL), metric=['bbox', 'segm']))
    evaluator.dataset_meta = dict(classes=CLASSES)
    evaluator.process(samples[:7])
    evaluator.process(samples[7:])
    res = evaluator.evaluate(len(samples))
    names = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
    assert set(res) == {f'coco/{k}_{n}' for k in ('bbox', 'segm') for n in names}
    assert res['coco/segm_mAP'] == res['coco/segm_mAP_50'] == res['coco/segm_mAP_75'] == 1.0
    assert res['coco/bbox_mAP'] == 1.0
    assert all(v in (1.0, -1.0) for v in res.values())  # -1: no gt of that size


def test_perturbed_masks_give_lower_ap_identical_to_pycocotools(coco, gt_masks):
    samples = _perturbed_samples(coco, gt_masks)
    res = _run(CocoMetric(ann_file=str(BALLOON_VAL), metric=['bbox', 'segm']), samples)
    segm = _direct(coco, samples, 'segm')
    bbox = _direct(coco, samples, 'bbox')
    names = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
    assert [res[f'segm_{n}'] for n in names] == [float(f'{v:.3f}') for v in segm[:6]]
    assert [res[f'bbox_{n}'] for n in names] == [float(f'{v:.3f}') for v in bbox[:6]]
    assert 0.3 < res['segm_mAP'] < 0.9  # shifted masks miss the strict IoU thresholds
    assert res['segm_mAP_50'] > res['segm_mAP']
    assert res['bbox_mAP'] == 1.0 or res['bbox_mAP'] > res['segm_mAP']  # the boxes were left exact


def test_without_ann_file_ground_truth_from_instance_polygons(coco, gt_masks):
    samples = _perturbed_samples(coco, gt_masks, seed=3, with_instances=True)
    with_file = _run(CocoMetric(ann_file=str(BALLOON_VAL), metric='segm'), samples)
    without = _run(CocoMetric(metric='segm'), samples)
    # overall AP does not depend on the gt areas (json area vs pycocotools' polygon area), only s/m/l could
    for k in ('segm_mAP', 'segm_mAP_50', 'segm_mAP_75'):
        assert without[k] == with_file[k]
    assert without['segm_mAP'] < 1.0


def test_without_ann_file_ground_truth_from_gt_instances_masks(coco, gt_masks):
    samples = _perturbed_samples(coco, gt_masks, seed=4, with_instances=True)
    reference = _run(CocoMetric(metric='segm'), samples)
    for s, (boxes, masks, _) in zip(samples, gt_masks.values()):
        for inst in s['instances']:
            del inst['mask']  # records without masks: the packed gt masks are used
        s['gt_instances'] = dict(bboxes=torch.from_numpy(boxes), labels=torch.zeros(len(boxes), dtype=torch.long),
                                 masks=torch.from_numpy(masks))
    from_masks = _run(CocoMetric(metric='segm'), samples)
    assert from_masks == reference
    s = samples[0]
    s['gt_instances']['masks'] = s['gt_instances']['masks'][:, ::2, ::2]
    with pytest.raises(ValueError, match='ori_shape'):
        _run(CocoMetric(metric='segm'), samples[:1])


def test_proposal_recall_is_class_agnostic(coco, gt_masks):
    rng = np.random.RandomState(5)
    samples = []
    for img_id, (boxes, masks, _) in gt_masks.items():
        jitter = boxes + rng.normal(0, 4, boxes.shape).astype(np.float32)
        extra = rng.uniform(0, 500, (20, 2)).astype(np.float32)
        extra = np.concatenate([extra, extra + 50], 1)
        all_boxes = np.concatenate([jitter, extra])
        labels = np.zeros(len(all_boxes), dtype=np.int64)  # an RPN's proposals all have label 0
        info = coco.imgs[img_id]
        s = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=(info['height'], info['width'])))
        s.pred_instances = InstanceData(bboxes=torch.from_numpy(all_boxes), scores=torch.rand(len(all_boxes)),
                                        labels=torch.from_numpy(labels))
        samples.append(s.to_dict())
    res = _run(CocoMetric(ann_file=str(BALLOON_VAL), metric='proposal', proposal_nums=(1, 10, 100)), samples)
    direct = _direct(coco, [dict(s, pred_instances=dict(s['pred_instances'], masks=torch.zeros(
        len(s['pred_instances']['bboxes']), 1, 1))) for s in samples], 'bbox', use_cats=False, max_dets=(1, 10, 100))
    assert list(res) == ['AR@1', 'AR@10', 'AR@100', 'AR_s@100', 'AR_m@100', 'AR_l@100']
    assert [res[k] for k in res] == [float(f'{v:.3f}') for v in direct[6:12]]
    assert res['AR@100'] > 0.5 and res['AR@1'] < res['AR@100']

    # default proposal_nums: MMDetection's key names, through the Evaluator
    evaluator = Evaluator(dict(type='CocoMetric', ann_file=str(BALLOON_VAL), metric=['proposal', 'bbox']))
    evaluator.dataset_meta = dict(classes=CLASSES)
    evaluator.process(samples)
    out = evaluator.evaluate(len(samples))
    assert {'coco/AR@100', 'coco/AR@300', 'coco/AR@1000', 'coco/AR_s@1000', 'coco/AR_m@1000',
            'coco/AR_l@1000', 'coco/bbox_mAP'} <= set(out)
    assert out['coco/AR@100'] == out['coco/AR@1000'] == res['AR@100']  # at most 23 proposals per image


def test_format_only_writes_bbox_and_segm_json(coco, gt_masks, tmp_path):
    samples = _perturbed_samples(coco, gt_masks, seed=6)
    prefix = tmp_path / 'out' / 'res'
    metric = CocoMetric(ann_file=str(BALLOON_VAL), metric=['bbox', 'segm'], format_only=True,
                        outfile_prefix=str(prefix))
    assert _run(metric, samples) == {}
    bbox = json.loads((tmp_path / 'out' / 'res.bbox.json').read_text())
    segm = json.loads((tmp_path / 'out' / 'res.segm.json').read_text())
    n = sum(len(s['pred_instances']['scores']) for s in samples)
    assert len(bbox) == len(segm) == n
    first = segm[0]
    assert first['image_id'] == samples[0]['img_id'] and first['category_id'] == 1
    decoded = mask_util.decode(first['segmentation']).astype(bool)
    np.testing.assert_array_equal(decoded, samples[0]['pred_instances']['masks'][0].numpy())
    # the written results evaluate to the metric's own numbers
    res = _run(CocoMetric(ann_file=str(BALLOON_VAL), metric='segm'), samples)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes([{k: v for k, v in d.items() if k != 'bbox'} for d in segm]), 'segm')
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert res['segm_mAP'] == float(f'{ev.stats[0]:.3f}')


def test_classwise_segm_and_errors(coco, gt_masks, caplog):
    samples = _perturbed_samples(coco, gt_masks, seed=7)
    res = _run(CocoMetric(ann_file=str(BALLOON_VAL), metric='segm', classwise=True), samples)
    assert res['segm_balloon_precision'] == res['segm_mAP']

    no_masks = copy.copy(samples[0])
    no_masks['pred_instances'] = {k: v for k, v in samples[0]['pred_instances'].items() if k != 'masks'}
    with pytest.raises(ValueError, match='pred_instances.masks'):
        CocoMetric(metric='segm').process(None, [no_masks])
    small = copy.copy(samples[0])
    small['pred_instances'] = dict(samples[0]['pred_instances'],
                                   masks=samples[0]['pred_instances']['masks'][:, ::2, ::2])
    with pytest.raises(ValueError, match='original image'):
        CocoMetric(metric='segm').process(None, [small])
