"""`kiln infer` in a subprocess: image files, folders, globs and a video made of BCCD frames."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from kiln.config import Config
from kiln.registry import MODELS, init_default_scope

REPO = Path(__file__).resolve().parents[3]
BCCD_IMGS = REPO / 'data' / 'bccd' / 'JPEGImages'
CONFIG = REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'


def test_kiln_infer_images_globs_and_video(tmp_path):
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
    folder = tmp_path / 'folder'
    folder.mkdir()
    (folder / 'a.jpg').write_bytes((BCCD_IMGS / 'BloodImage_00000.jpg').read_bytes())
    globbed = tmp_path / 'globbed'
    globbed.mkdir()
    (globbed / 'b.jpg').write_bytes((BCCD_IMGS / 'BloodImage_00001.jpg').read_bytes())
    (globbed / 'c.jpg').write_bytes((BCCD_IMGS / 'BloodImage_00002.jpg').read_bytes())
    video = tmp_path / 'cells.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (320, 240))
    for i in range(3, 6):
        writer.write(cv2.resize(cv2.imread(str(BCCD_IMGS / f'BloodImage_{i:05d}.jpg')), (320, 240)))
    writer.release()

    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, '-m', 'kiln.cli', 'infer', str(cfg_file), str(ckpt), str(folder), str(globbed / '*.jpg'),
         str(video), '--out-dir', str(out), '--score-thr', '0.05', '--batch-size', '2', '--device', 'cpu'],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (out / 'preds').glob('*.json')) == ['a.json', 'b.json', 'c.json']
    assert sorted(p.name for p in (out / 'vis').iterdir()) == ['a.png', 'b.png', 'c.png', 'cells.mp4']
    record = json.loads((out / 'preds' / 'a.json').read_text())
    assert record['img_path'] == str(folder / 'a.jpg')
    n = len(record['scores'])
    assert n > 0 and min(record['scores']) > 0.05
    assert len(record['bboxes']) == len(record['labels']) == len(record['label_names']) == n
    assert len(record['scores_per_class']) == n and len(record['scores_per_class'][0]) == 3
    boxes = np.asarray(record['bboxes'])
    assert boxes[:, [0, 2]].max() <= 640 and boxes[:, [0, 2]].max() > 256  # pixels of the 640x480 original
    assert set(record['label_names']) <= {'RBC', 'WBC', 'Platelets'}
    assert cv2.imread(str(out / 'vis' / 'a.png')).shape == (480, 640, 3)

    frames = sorted((out / 'preds' / 'cells').glob('*.json'))
    assert [p.name for p in frames] == ['000000.json', '000001.json', '000002.json']
    assert json.loads(frames[2].read_text())['frame'] == 2
    cap = cv2.VideoCapture(str(out / 'vis' / 'cells.mp4'))
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (240, 320, 3)
        count += 1
    cap.release()
    assert count == 3



def test_kiln_infer_bad_inputs(tmp_path, capsys):
    from kiln.cli.main import main
    ckpt = tmp_path / 'w.pth'
    ckpt.write_bytes(b'')
    assert main(['infer', str(CONFIG), str(ckpt), str(tmp_path / 'missing.jpg')]) == 2
    err = capsys.readouterr().err
    assert 'kiln infer: error:' in err and 'missing.jpg' in err and 'does not exist' in err
    (tmp_path / 'notes.txt').write_text('x')
    assert main(['infer', str(CONFIG), str(ckpt), str(tmp_path / 'notes.txt')]) == 2
    assert 'neither an image' in capsys.readouterr().err
    assert main(['infer', str(CONFIG), str(ckpt), str(tmp_path / '*.png')]) == 2
    assert 'matches no file' in capsys.readouterr().err
    assert main(['infer', str(CONFIG), str(tmp_path / 'nockpt.pth'), str(tmp_path / 'notes.txt')]) == 2
    assert 'nockpt.pth' in capsys.readouterr().err
