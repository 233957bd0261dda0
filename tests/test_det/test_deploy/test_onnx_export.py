"""ONNX export of FCOS, RetinaNet, Faster R-CNN and Mask R-CNN: onnxruntime vs PyTorch on real images.

Each family is built from its demo config (RetinaNet from the base model shrunk the same way) with seeded random
weights saved as a checkpoint, exported at 320x320 through the checkpoint path (``kiln.det.deploy.export_onnx``)
and run on BCCD images (balloon photos for Mask R-CNN). The score thresholds are set so that the random
models give a moderate number of detections.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

from kiln.checkpoint import save_checkpoint  # noqa: E402
from kiln.config import Config  # noqa: E402
from kiln.registry import MODELS, init_default_scope  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / 'configs'
BCCD_IMAGES = REPO / 'data' / 'bccd' / 'JPEGImages'
BALLOON_VAL = REPO.parent / 'shared' / 'data' / 'balloon' / 'val'
SIZE = (320, 320)

# family -> (config text written to tmp, images, test_cfg overrides)
_FCOS = f"""
_base_ = ['{CONFIGS}/fcos/fcos_r18-slim_fpn_bccd.py']
model = dict(test_cfg=dict(score_thr=0.0155, max_per_img=100))
"""
_RETINA = f"""
_base_ = ['{CONFIGS}/_base_/models/retinanet_r50_fpn.py', '{CONFIGS}/_base_/datasets/bccd_detection.py',
          '{CONFIGS}/_base_/default_runtime.py']
model = dict(
    backbone=dict(depth=18, base_channels=32, out_indices=(1, 2, 3), frozen_stages=-1, norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, start_level=0, add_extra_convs='on_input',
              num_outs=3),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2,
                   anchor_generator=dict(strides=[8, 16, 32])),
    test_cfg=dict(score_thr=0.012, max_per_img=100))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 384), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
_FASTER = f"""
_base_ = ['{CONFIGS}/faster_rcnn/faster-rcnn_r18-slim_fpn_bccd.py']
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.43)))
"""
_MASK = f"""
_base_ = ['{CONFIGS}/mask_rcnn/mask-rcnn_r18-slim_fpn_balloon.py']
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.95, max_per_img=50)))
"""


def _bccd(n):
    return [str(BCCD_IMAGES / f'BloodImage_0000{i}.jpg') for i in range(n)]


def _balloon(n):
    if not BALLOON_VAL.exists():
        pytest.skip('shared balloon data not beside the repository')
    return [str(p) for p in sorted(BALLOON_VAL.glob('*.jpg'))[:n]]


FAMILIES = {'fcos': (_FCOS, _bccd), 'retinanet': (_RETINA, _bccd), 'faster_rcnn': (_FASTER, _bccd),
            'mask_rcnn': (_MASK, _balloon)}


def _spread(model):
    """Re-draw the classifier weights with a larger std: the initial ones (std 0.01) give nearly equal scores,
    a random model with spread-out scores gives a realistic number of detections."""
    torch.manual_seed(1)
    head = getattr(model, 'bbox_head', None)
    if head is not None and hasattr(head, 'retina_cls'):
        torch.nn.init.normal_(head.retina_cls.weight, std=0.3)
    if getattr(model, 'roi_head', None) is not None:
        torch.nn.init.normal_(model.roi_head.bbox_head.fc_cls.weight, std=0.3)


@pytest.fixture(scope='module', params=list(FAMILIES))
def exported(request, tmp_path_factory):
    """(family, model, ORTDetector, image paths, onnx path, metadata) for one family, exported once."""
    from kiln.det.deploy import ORTDetector, export_onnx
    torch.set_num_threads(2)
    init_default_scope('kiln.det')
    family = request.param
    text, images = FAMILIES[family]
    tmp = tmp_path_factory.mktemp(family)
    cfg_file = tmp / f'{family}.py'
    cfg_file.write_text(textwrap.dedent(text))
    cfg = Config.fromfile(str(cfg_file))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    _spread(model)
    ckpt = tmp / 'model.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    onnx_file = tmp / f'{family}.onnx'
    meta = export_onnx(str(cfg_file), str(ckpt), onnx_file, img_size=SIZE, dynamic_batch=True)
    model.eval()
    return family, model, ORTDetector(onnx_file, num_threads=2), images(2), onnx_file, meta


def _torch_predict(model, canvas, img_meta, rescale=False):
    """kiln's PyTorch ``predict`` on the network input the ONNX graph gets (same resize, padded to SIZE)."""
    from kiln.det.structures import DetDataSample
    h, w = img_meta['img_shape']
    chw = torch.from_numpy(np.ascontiguousarray(canvas[:h, :w])).permute(2, 0, 1).contiguous()
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=img_meta['ori_shape'],
                                         scale_factor=img_meta['scale_factor']))
    data = model.data_preprocessor({'inputs': [chw], 'data_samples': [sample]})
    x = data['inputs']
    x = F.pad(x, (0, SIZE[1] - x.shape[-1], 0, SIZE[0] - x.shape[-2]), value=model.data_preprocessor.pad_value)
    sample.set_metainfo(dict(batch_input_shape=SIZE, pad_shape=SIZE))
    with torch.no_grad():
        return model.predict(x, [sample], rescale=rescale)[0].pred_instances, x


def _assert_same(onnx_boxes, onnx_scores, onnx_labels, pred, box_tol=1e-2):
    order = np.argsort(-onnx_scores, kind='stable')
    ref_scores = pred.scores.numpy()
    ref_order = np.argsort(-ref_scores, kind='stable')
    assert len(onnx_scores) == len(ref_scores)
    np.testing.assert_array_equal(onnx_labels[order], pred.labels.numpy()[ref_order])
    np.testing.assert_allclose(onnx_scores[order], ref_scores[ref_order], atol=1e-3, rtol=0)
    np.testing.assert_allclose(onnx_boxes[order], pred.bboxes.numpy()[ref_order], atol=box_tol, rtol=0)


def test_parity_with_pytorch(exported):
    """Same labels, boxes within 1e-2 px and scores within 1e-3 as kiln's PyTorch predict, on 2 real images;
    Mask R-CNN: mask probabilities of the same boxes within 1e-3."""
    family, model, det, images, _, _ = exported
    counts = []
    for path in images:
        canvas, img_meta = det.preprocess(path)
        raw = det.run(canvas[None], np.array([img_meta['img_shape']]))
        keep = raw['labels'][0] >= 0
        pred, x = _torch_predict(model, canvas, img_meta)
        counts.append(int(keep.sum()))
        assert (np.sort(raw['scores'][0])[::-1] == raw['scores'][0]).all()  # sorted, padding last
        assert (raw['labels'][0][~keep] == -1).all() and (raw['scores'][0][~keep] == 0).all()
        _assert_same(raw['boxes'][0][keep], raw['scores'][0][keep], raw['labels'][0][keep], pred)
        if family == 'mask_rcnn':
            from kiln.det.models.roi_heads.roi_utils import bbox2roi
            with torch.no_grad():
                feats = model.extract_feat(x)
                logits = model.roi_head._mask_forward(feats, bbox2roi([pred.bboxes]))['mask_preds']
            ref = logits[torch.arange(len(pred.labels)), pred.labels].sigmoid().numpy()
            order = np.argsort(-raw['scores'][0][keep], kind='stable')
            ref_order = np.argsort(-pred.scores.numpy(), kind='stable')
            np.testing.assert_allclose(raw['masks'][0][keep][order], ref[ref_order], atol=1e-3, rtol=0)
    assert all(5 <= c <= 100 for c in counts), counts  # a moderate number of detections on each image


def test_ort_detector_original_pixels(exported):
    """``ORTDetector(path)`` gives the PyTorch predictions rescaled to the original image; pasted masks agree with
    ``FCNMaskHead``'s on > 99.5 % of the box pixels."""
    family, model, det, images, _, _ = exported
    result = det(images[0])
    canvas, img_meta = det.preprocess(images[0])
    pred, _ = _torch_predict(model, canvas, img_meta, rescale=True)
    _assert_same(result['bboxes'], result['scores'], result['labels'], pred, box_tol=3e-2)
    assert result['label_names'] == [det.classes[i] for i in result['labels']]
    if family == 'mask_rcnn':
        ref = pred.masks.numpy()
        order = np.argsort(-result['scores'], kind='stable')
        ref_order = np.argsort(-pred.scores.numpy(), kind='stable')
        ours, ref = result['masks'][order], ref[ref_order]
        assert ours.shape == ref.shape and ours.shape[1:] == tuple(img_meta['ori_shape'])
        assert ref.any()
        disagree = (ours != ref).sum() / max(int((ours | ref).sum()), 1)
        assert disagree < 0.005, disagree


def test_metadata_and_dynamic_batch(exported):
    """Metadata readable with ``onnx.load``; a batch of 2 gives the results of the two single-image runs."""
    family, _, det, images, onnx_file, meta = exported
    proto = onnx.load(str(onnx_file))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props == meta
    assert props['input_size'] == list(SIZE) and props['bgr_to_rgb'] is True
    assert props['mean'] == [123.675, 116.28, 103.53] and props['std'] == [58.395, 57.12, 57.375]
    assert props['classes'] == (['balloon'] if family == 'mask_rcnn' else ['RBC', 'WBC', 'Platelets'])
    assert props['kiln_version'] and props['outputs'][-1] == ('masks' if family == 'mask_rcnn' else 'labels')
    prepared = [det.preprocess(p) for p in images]
    batched = det.run(np.stack([p[0] for p in prepared]), np.array([p[1]['img_shape'] for p in prepared]))
    assert batched['labels'].shape[0] == 2
    for i, (canvas, img_meta) in enumerate(prepared):
        one = det.run(canvas[None], np.array([img_meta['img_shape']]))
        np.testing.assert_array_equal(batched['labels'][i], one['labels'][0])
        np.testing.assert_allclose(batched['boxes'][i], one['boxes'][0], atol=1e-3)
        np.testing.assert_allclose(batched['scores'][i], one['scores'][0], atol=1e-5)
        if 'masks' in one:
            np.testing.assert_allclose(batched['masks'][i], one['masks'][0], atol=1e-4)


def test_unsupported_opset_and_missing_file(tmp_path):
    from kiln.det.deploy import ORTDetector, export_onnx
    with pytest.raises(ValueError, match='opset'):
        export_onnx(str(CONFIGS / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'), None, tmp_path / 'x.onnx', opset=11)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ORTDetector(tmp_path / 'missing.onnx')


def test_cli_export_and_benchmark(tmp_path):
    """``kiln export`` writes a checked ONNX file; ``kiln benchmark --backend onnxruntime`` reports latency."""
    init_default_scope('kiln.det')
    cfg_file = tmp_path / 'fcos.py'
    cfg_file.write_text(textwrap.dedent(_FCOS))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = tmp_path / 'fcos.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = tmp_path / 'out' / 'fcos.onnx'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    kiln = [sys.executable, '-m', 'kiln.cli']
    res = subprocess.run([*kiln, 'export', str(cfg_file), str(ckpt), '--format', 'onnx', '--img-size', '256', '320',
                          '--opset', '17', '--out', str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.is_file() and str(out) in res.stdout
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert meta['input_size'] == [256, 320] and meta['model_type'] == 'FCOS'
    res = subprocess.run([*kiln, 'benchmark', str(cfg_file), str(ckpt), '--backend', 'onnxruntime', '--onnx',
                          str(out), '--num-images', '3', '--warmup', '1', '--json'], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report['backend'] == 'onnxruntime' and report['num_images'] == 3
    for key in ('model', 'end_to_end'):
        assert 0 < report[key]['median_ms'] <= report[key]['p90_ms'] and report[key]['images_per_s'] > 0


def test_cli_errors(tmp_path, capsys):
    """Bad --format, a missing checkpoint and a bad --num-images are usage errors (exit status 2)."""
    from kiln.cli.main import main
    cfg = str(CONFIGS / 'fcos' / 'fcos_r18-slim_fpn_bccd.py')
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    assert main(['export', cfg, str(ckpt), '--format', 'tensorrt']) == 2
    assert "'tensorrt' is not supported" in capsys.readouterr().err
    assert main(['export', cfg, str(tmp_path / 'missing.pth')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert main(['benchmark', cfg, str(ckpt), '--num-images', '0']) == 2
    assert '--num-images' in capsys.readouterr().err
