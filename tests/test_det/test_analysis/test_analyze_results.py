"""kiln analyze-results picks the best / worst BCCD test images by per-image mAP for crafted predictions."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kiln.cli._common import CLIError
from kiln.det.cli.analyze_results import load_coco_predictions, rank_images
from kiln.det.evaluation.analysis import gt_from_sample, image_ap
from test_det.test_analysis.analysis_data import CLASSES, gt_arrays, perturb

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'
N = 6  # the first 6 test images (test_dataloader.dataset.indices=6)


def _crafted(records):
    """Image 2: the ground truth itself (mAP 1); image 4: no prediction (mAP 0); the others jittered (0 < mAP
    < 1). Returns per-image (boxes, scores, labels)."""
    rng = np.random.default_rng(0)
    out = []
    for i, rec in enumerate(records):
        boxes, labels = gt_arrays(rec)
        if i == 2:
            out.append((boxes, np.linspace(1, 0.5, len(boxes)), labels))
        elif i == 4:
            out.append((np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)))
        else:
            out.append(perturb(rec, rng))
    return out


def _coco_json(records, crafted, path):
    results = [dict(image_id=rec['img_id'], category_id=int(l), score=float(s),
                    bbox=[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])])
               for rec, (boxes, scores, labels) in zip(records, crafted)
               for b, s, l in zip(boxes, scores, labels)]
    path.write_text(json.dumps(results))
    return path


def test_rank_images(bccd_test):
    records = bccd_test[:N]
    gts = [gt_from_sample(r) for r in records]
    preds = [dict(bboxes=b, scores=s, labels=l) for b, s, l in _crafted(records)]
    good, bad, aps = rank_images(gts, preds, CLASSES, topk=2)
    assert aps[2] == 1.0 and aps[4] == 0.0 and all(0 < aps[i] < 1 for i in (0, 1, 3, 5))
    assert good[-1] == (2, 1.0) and bad[0] == (4, 0.0)
    assert [i for i, _ in good] == sorted(range(N), key=lambda i: aps[i])[-2:]
    assert [i for i, _ in bad] == sorted(range(N), key=lambda i: aps[i])[:2]
    assert aps == [image_ap(g, p, CLASSES) for g, p in zip(gts, preds)]
    good, bad, _ = rank_images(gts, preds, CLASSES, topk=10)  # 2 * topk > 6: topk = 3
    assert len(good) == len(bad) == 3


def test_image_ap_is_coco_map_of_the_image(bccd_test):
    """One image alone through CocoMetric gives the same mAP as image_ap (classes all present in it)."""
    from kiln.det.evaluation import CocoMetric
    from test_det.test_analysis.analysis_data import sample
    rec = next(r for r in bccd_test if len(set(gt_arrays(r)[1].tolist())) == 3)
    boxes, scores, labels = perturb(rec, np.random.default_rng(3))
    metric = CocoMetric(backend='pycocotools')
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, [sample(rec, boxes, scores, labels)])
    reported = metric.compute_metrics(metric.results)['bbox_mAP']
    assert round(image_ap(gt_from_sample(rec), dict(bboxes=boxes, scores=scores, labels=labels), CLASSES), 3) \
        == reported


def test_load_coco_predictions_errors(bccd_test, tmp_path):
    records = bccd_test[:N]
    path = _coco_json(records, _crafted(records), tmp_path / 'p.json')
    preds = load_coco_predictions(str(path), records, None)
    np.testing.assert_allclose(preds[2]['bboxes'], gt_arrays(records[2])[0], atol=1e-4)
    assert len(preds[4]['scores']) == 0
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([dict(image_id='nope', category_id=0, bbox=[0, 0, 1, 1], score=1.0)]))
    with pytest.raises(CLIError, match="entry 0: image_id 'nope' is not an image of the test set"):
        load_coco_predictions(str(bad), records, None)
    bad.write_text(json.dumps([dict(image_id=records[0]['img_id'], category_id=5, bbox=[0, 0, 1, 1], score=1.0)]))
    with pytest.raises(CLIError, match='category_id 5 is not a class'):
        load_coco_predictions(str(bad), records, [1, 2, 3])


def test_cli_with_pred_file(bccd_test, tmp_path):
    records = bccd_test[:N]
    pred = _coco_json(records, _crafted(records), tmp_path / 'pred.bbox.json')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]), OMP_NUM_THREADS='1')
    show = tmp_path / 'show'
    r = subprocess.run([sys.executable, '-m', 'kiln.cli', 'analyze-results', str(CONFIG), '--pred', str(pred),
                        '--topk', '1', '--show-dir', str(show), '--cfg-options', f'test_dataloader.dataset.indices={N}'],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    best, worst = records[2]['img_id'], records[4]['img_id']
    assert sorted(p.name for p in (show / 'good').iterdir()) == [f'{best}_1.000.png']
    assert sorted(p.name for p in (show / 'bad').iterdir()) == [f'{worst}_0.000.png']
    with Image.open(show / 'good' / f'{best}_1.000.png') as im:
        assert im.size == (2 * records[2]['width'], records[2]['height'])  # ground truth | predictions
    summary = json.loads((show / 'image_ap.json').read_text())
    assert len(summary['images']) == N and summary['good'][0]['mAP'] == 1.0 and summary['bad'][0]['mAP'] == 0.0
    assert f'{best}.jpg 1.000' in r.stdout and f'{worst}.jpg 0.000' in r.stdout


def test_cli_with_checkpoint_runs_the_model(bccd_test, tmp_path, capsys):
    """CHECKPOINT mode: the (randomly initialised, saved) FCOS of the BCCD config runs on 2 test images through
    Runner.test(); both images are ranked, drawn and listed."""
    import torch

    from kiln.cli.main import main
    from kiln.config import Config
    from kiln.registry import MODELS, init_default_scope
    cfg = Config.fromfile(str(CONFIG))
    init_default_scope('kiln.det')
    torch.manual_seed(0)
    ckpt = tmp_path / 'fcos.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, ckpt)
    show = tmp_path / 'show'
    assert main(['analyze-results', str(CONFIG), str(ckpt), '--topk', '1', '--show-dir', str(show),
                 '--cfg-options', 'test_dataloader.dataset.indices=2',
                 f'test_dataloader.dataset.data_root={REPO / "data" / "bccd"}/']) == 0
    summary = json.loads((show / 'image_ap.json').read_text())
    assert [Path(i['img_path']).stem for i in summary['images']] == ['BloodImage_00007', 'BloodImage_00011']
    assert len(list((show / 'good').iterdir())) == len(list((show / 'bad').iterdir())) == 1
    assert '2 images, mean per-image mAP' in capsys.readouterr().out
    # the config's default_hooks.analysis (DetAnalysisHook) wrote its files during Runner.test()
    cm = json.loads(next(show.glob('*/analysis/confusion_matrix.json')).read_text())
    n_gt = sum(len(gt_arrays(r)[1]) for r in bccd_test[:2])
    assert np.sum(cm['matrix'], axis=1)[:3].sum() >= n_gt  # every ground-truth box is counted at least once
    assert next(show.glob('*/analysis/pr_curves.png')).stat().st_size > 10_000
    assert main(['analyze-results', str(CONFIG)]) == 2
    assert 'give either a CHECKPOINT or --pred FILE' in capsys.readouterr().err
