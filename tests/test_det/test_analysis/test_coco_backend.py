"""CocoMetric gives the same numbers with the pycocotools and faster-coco-eval backends, on real BCCD boxes and
real balloon masks."""
import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from kiln.det.evaluation import CocoMetric
from kiln.det.evaluation.metrics.coco_utils import (build_coco_from_gt, coco_classes, det_results_to_coco,
                                                    resolve_backend)
from kiln.det.structures import DetDataSample
from kiln.structures import InstanceData
from test_det.test_analysis.analysis_data import BALLOON_VAL, CLASSES, perturbed_samples

pytest.importorskip('faster_coco_eval')


def _run(metric: CocoMetric, samples: list, classes=CLASSES) -> dict:
    metric.dataset_meta = dict(classes=classes)
    for k in range(0, len(samples), 8):
        metric.process(None, samples[k:k + 8])
    return metric.compute_metrics(metric.results)


def test_default_backend_is_faster_coco_eval_when_installed():
    assert CocoMetric().backend == 'faster_coco_eval'
    assert CocoMetric(backend='pycocotools').backend == 'pycocotools'
    assert resolve_backend('auto') == 'faster_coco_eval'
    with pytest.raises(ValueError, match="backend must be one of"):
        CocoMetric(backend='detectron2')


@pytest.mark.parametrize('seed', [0, 1])
def test_bbox_classwise_and_proposal_identical_on_bccd(bccd_test, seed):
    samples = perturbed_samples(bccd_test, seed)
    kw = dict(metric=['bbox', 'proposal'], classwise=True, proposal_nums=(1, 10, 100))
    ref = _run(CocoMetric(backend='pycocotools', **kw), samples)
    fast = _run(CocoMetric(backend='faster_coco_eval', **kw), samples)
    assert fast == ref
    assert {'bbox_mAP', 'RBC_precision', 'AR@100'} <= set(ref)
    assert 0.2 < ref['bbox_mAP'] < 0.9  # the jittered boxes are neither all right nor all wrong


def test_unrounded_precision_arrays_identical(bccd_test):
    """Beyond the 3 decimals of the dict: the full precision/recall arrays of both COCOeval runs agree."""
    samples = perturbed_samples(bccd_test, 2)
    evals = {}
    for backend in ('pycocotools', 'faster_coco_eval'):
        metric = CocoMetric(backend=backend)
        metric.dataset_meta = dict(classes=CLASSES)
        metric.process(None, samples)
        gts, preds = zip(*metric.results)
        gt, id_map = build_coco_from_gt(gts, CLASSES, backend)
        with contextlib.redirect_stdout(io.StringIO()):
            ev = coco_classes(backend)[1](gt, gt.loadRes(det_results_to_coco(preds, [0, 1, 2], id_map)), 'bbox')
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        evals[backend] = ev
    a, b = evals['pycocotools'], evals['faster_coco_eval']
    np.testing.assert_allclose(b.stats[:12], a.stats[:12], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.eval['precision'], a.eval['precision'], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.eval['recall'], a.eval['recall'], rtol=0, atol=1e-12)


def test_segm_identical_on_balloon_masks():
    if not BALLOON_VAL.exists():
        pytest.skip('shared balloon data not beside the repo')
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(BALLOON_VAL))
    rng = np.random.RandomState(0)
    samples = []
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        masks = np.stack([coco.annToMask(a).astype(bool) for a in anns])
        shifted = []
        for a, m in zip(anns, masks):  # shift right by 3-15 % of the box width
            dx = int(round(rng.uniform(0.03, 0.15) * a['bbox'][2]))
            s = np.zeros_like(m)
            s[:, dx:] = m[:, :m.shape[1] - dx]
            shifted.append(s)
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in anns], dtype=np.float32)
        info = coco.imgs[img_id]
        s = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=(info['height'], info['width'])))
        s.pred_instances = InstanceData(bboxes=torch.from_numpy(boxes), scores=torch.from_numpy(rng.rand(len(anns))),
                                        labels=torch.zeros(len(anns), dtype=torch.long),
                                        masks=torch.from_numpy(np.stack(shifted)))
        samples.append(s.to_dict())
    kw = dict(ann_file=str(BALLOON_VAL), metric=['bbox', 'segm'], classwise=True)
    ref = _run(CocoMetric(backend='pycocotools', **kw), samples, ('balloon',))
    fast = _run(CocoMetric(backend='faster_coco_eval', **kw), samples, ('balloon',))
    assert fast == ref
    assert 0.2 < ref['segm_mAP'] < ref['bbox_mAP']
