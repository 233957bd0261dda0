"""`kiln infer --backend onnxruntime` on a `kiln export`ed FCOS gives the JSON of `--backend torch` (subprocesses)."""
import copy
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kiln.cli.main import main
from kiln.config import Config
from kiln.registry import MODELS, init_default_scope

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

REPO = Path(__file__).resolve().parents[3]
BCCD_IMGS = REPO / 'data' / 'bccd' / 'JPEGImages'
CONFIG = REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'


def _kiln(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', 'kiln.cli', *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _sorted_preds(record):
    order = np.argsort(-np.asarray(record['scores']), kind='stable')
    return np.asarray(record['bboxes']).reshape(-1, 4)[order], [record['labels'][i] for i in order]


def test_infer_onnxruntime_matches_torch(tmp_path):
    # the test pipeline resizes BCCD's 640x480 to 256x192, already a multiple of 32: exported at 192x256, the
    # ONNX input is exactly the padded PyTorch batch, so both backends see the same network input
    cfg_file = tmp_path / 'small.py'
    cfg_file.write_text(
        f"_base_ = '{CONFIG}'\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(256, 192), keep_ratio=True),\n"
        "                 dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")
    init_default_scope('kiln.det')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(Config.fromfile(str(cfg_file)).model))
    ckpt = tmp_path / 'fcos.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('RBC', 'WBC', 'Platelets'))),
                    state_dict=model.state_dict()), ckpt)
    from kiln.det.deploy import export_onnx
    onnx_file = tmp_path / 'fcos.onnx'
    export_onnx(str(cfg_file), str(ckpt), onnx_file, img_size=(192, 256))  # what `kiln export` runs
    images = tmp_path / 'images'
    images.mkdir()
    for i in range(2):
        (images / f'cell{i}.jpg').write_bytes((BCCD_IMGS / f'BloodImage_0000{i}.jpg').read_bytes())
    video = tmp_path / 'cells.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (320, 240))
    for i in range(2):
        writer.write(cv2.resize(cv2.imread(str(BCCD_IMGS / f'BloodImage_0000{i}.jpg')), (320, 240)))
    writer.release()

    common = ('--score-thr', 0.05, '--device', 'cpu', '--no-progress')
    assert main(['infer', str(cfg_file), str(ckpt), str(images), '--out-dir', str(tmp_path / 'torch'),
                 *map(str, common)]) == 0
    proc = _kiln('infer', cfg_file, onnx_file, images / '*.jpg', video, '--backend', 'onnxruntime',
                 '--out-dir', tmp_path / 'ort', *common, cwd=tmp_path)
    assert '2 image(s), 1 video(s)' in proc.stdout
    assert sorted(p.name for p in (tmp_path / 'ort' / 'vis').iterdir()) == ['cell0.png', 'cell1.png', 'cells.mp4']
    assert len(glob.glob(str(tmp_path / 'ort' / 'preds' / 'cells' / '*.json'))) == 2

    for name in ('cell0', 'cell1'):
        ref = json.loads((tmp_path / 'torch' / 'preds' / f'{name}.json').read_text())
        ours = json.loads((tmp_path / 'ort' / 'preds' / f'{name}.json').read_text())
        assert ours['img_path'] == ref['img_path'] == str(images / f'{name}.jpg')
        assert len(ref['scores']) >= 5 and len(ours['scores']) == len(ref['scores'])
        ref_boxes, ref_labels = _sorted_preds(ref)
        boxes, labels = _sorted_preds(ours)
        assert labels == ref_labels
        np.testing.assert_allclose(boxes, ref_boxes, atol=1e-2, rtol=0)
        assert ours['label_names'] == [['RBC', 'WBC', 'Platelets'][i] for i in ours['labels']]  # ONNX metadata
        np.testing.assert_allclose(sorted(ours['scores']), sorted(ref['scores']), atol=1e-3, rtol=0)
        assert cv2.imread(str(tmp_path / 'ort' / 'vis' / f'{name}.png')).shape == (480, 640, 3)


def test_infer_onnxruntime_rejects_a_pytorch_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / 'fcos.pth'
    ckpt.write_bytes(b'')
    assert main(['infer', str(CONFIG), str(ckpt), str(BCCD_IMGS / 'BloodImage_00000.jpg'),
                 '--backend', 'onnxruntime']) == 2
    assert '.onnx file written by kiln export' in capsys.readouterr().err
