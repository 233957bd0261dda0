"""confusion_matrix on hand-made predictions for three real BCCD val images, against a matrix counted by hand
(MMDetection's confusion_matrix.py semantics)."""
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from kiln.det.evaluation.analysis import confusion_matrix, gt_from_sample
from test_det.test_analysis.analysis_data import bccd_records, gt_arrays

RBC, WBC, PLT, BG = 0, 1, 2, 3


@pytest.fixture(scope='module')
def images():
    recs = {r['img_id']: r for r in bccd_records('val')}
    return [recs['BloodImage_00000'], recs['BloodImage_00014'], recs['BloodImage_00017']]


def _preds(images):
    """Hand-made predictions; the comments give the cells they must add to."""
    (ba, la), (bb, lb), _ = (gt_arrays(r) for r in images)
    rbc_a = np.flatnonzero(la == RBC)
    a = [  # image A: 1 WBC + 19 RBC
        (ba[rbc_a[0]], 0.9, RBC),              # TP                                        [RBC, RBC]
        (ba[rbc_a[1]] + 1, 0.95, RBC),         # TP of a second RBC ...                    [RBC, RBC]
        (ba[rbc_a[1]] + 2, 0.8, RBC),          # ... and its duplicate (counted again)     [RBC, RBC]
        (ba[la == WBC][0], 0.7, PLT),          # WBC called platelet: [WBC, PLT]; the WBC is also [WBC, BG]
        (np.array([0, 0, 10, 10]), 0.9, RBC),  # on nothing                                [BG, RBC]
        (ba[rbc_a[2]], 0.2, RBC),              # below score_thr: ignored, that RBC is missed
    ]
    plt_b = np.flatnonzero(lb == PLT)
    b = [  # image B: 1 WBC + 16 RBC + 2 platelets
        (bb[plt_b[0]], 0.6, PLT),              # TP                                        [PLT, PLT]
        (bb[plt_b[1]], 0.5, RBC),              # platelet called RBC: [PLT, RBC] and [PLT, BG]
        (bb[lb == WBC][0], 0.99, WBC),         # TP                                        [WBC, WBC]
        (bb[lb == RBC][0], 0.4, WBC),          # RBC called WBC: [RBC, WBC] and [RBC, BG]
        (np.array([600, 440, 640, 480]), 0.35, PLT),  # on nothing (or too little)         [BG, PLT]
    ]
    out = []
    for dets in (a, b, []):
        out.append(dict(bboxes=np.array([d[0] for d in dets], dtype=np.float32).reshape(-1, 4),
                        scores=np.array([d[1] for d in dets], dtype=np.float32),
                        labels=np.array([d[2] for d in dets], dtype=np.int64)))
    return out


def test_preconditions_of_the_hand_count(images):
    """The hand count assumes every prediction overlaps (IoU >= 0.5) only the box it copies."""
    preds = _preds(images)
    for rec, pred, expected_hits in zip(images, preds, ([1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 0], [])):
        boxes, _ = gt_arrays(rec)
        hits = (box_iou(torch.from_numpy(pred['bboxes']), torch.from_numpy(boxes)) >= 0.5).sum(1)
        assert hits.tolist() == expected_hits
    assert [np.bincount(gt_arrays(r)[1], minlength=3).tolist() for r in images] == [[19, 1, 0], [16, 1, 2],
                                                                                  [16, 1, 1]]


def test_matrix_counted_by_hand(images):
    gts = [gt_from_sample(r) for r in images]  # from the records' "instances"
    matrix = confusion_matrix(gts, _preds(images), num_classes=3, score_thr=0.3, tp_iou_thr=0.5)
    expected = np.array([
        # pred: RBC WBC PLT  BG          ground truth:
        [3, 1, 0, 17 + 16 + 16],  # RBC: 3 TP detections (one duplicate), 1 called WBC; 49 missed
        [0, 1, 1, 1 + 1],         # WBC: 1 TP, 1 called PLT (and so missed), 1 without any prediction
        [1, 0, 1, 1 + 1],         # PLT: 1 TP, 1 called RBC (and so missed), 1 without any prediction
        [1, 0, 1, 0],             # background: 1 false RBC, 1 false platelet
    ])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64


def test_nms_removes_the_duplicate_and_thresholds_move_counts(images):
    gts = [gt_from_sample(r) for r in images]
    preds = _preds(images)
    with_nms = confusion_matrix(gts, preds, 3, score_thr=0.3, tp_iou_thr=0.5, nms_iou_thr=0.5)
    assert with_nms[RBC, RBC] == 2  # the duplicate RBC is suppressed
    plain = confusion_matrix(gts, preds, 3, score_thr=0.3, tp_iou_thr=0.5)
    np.testing.assert_array_equal(np.delete(with_nms.ravel(), 0), np.delete(plain.ravel(), 0))
    # score_thr=0.1 lets the 0.2-scored RBC in: one more TP, one less miss
    low = confusion_matrix(gts, preds, 3, score_thr=0.1)
    assert (low[RBC, RBC], low[RBC, BG]) == (plain[RBC, RBC] + 1, plain[RBC, BG] - 1)
    # a prediction shifted by 1-2 px still matches at IoU 0.95; at 0.99 the duplicates become background
    strict = confusion_matrix(gts, preds, 3, score_thr=0.3, tp_iou_thr=0.99)
    assert strict[BG, RBC] == plain[BG, RBC] + 2


def test_bad_input_is_reported(images):
    gts = [gt_from_sample(r) for r in images]
    with pytest.raises(ValueError, match='pair up'):
        confusion_matrix(gts, _preds(images)[:2], 3)
    bad = _preds(images)
    bad[1]['labels'][0] = 7
    with pytest.raises(ValueError, match=r'image 1: predicted labels must be in 0\.\.2'):
        confusion_matrix(gts, bad, 3)
