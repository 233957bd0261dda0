"""Zero-config training (``kiln train --data PATH``, :func:`kiln.det.apis.train_on_folder`): the config generated
for the shared BCCD (VOC), coco128 (YOLO) and balloon (COCO) folders, and one tiny end-to-end CLI run."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.config import Config
from kiln.det.apis.zero_config import build_zero_config, similar_class_names

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / 'shared' / 'data'
BCCD, COCO128, BALLOON = SHARED / 'bccd', SHARED / 'coco128', SHARED / 'balloon'


def _reloads_identically(cfg, info):
    written = Config.fromfile(info['config_file'])
    assert written.to_dict() == cfg.to_dict()


def test_bccd_voc_layout_config(tmp_path):
    cfg, info = build_zero_config(str(BCCD), work_dir=str(tmp_path))
    classes = ('Platelets', 'RBC', 'WBC')  # detect_layout: sorted xml names
    assert info['format'] == 'voc' and info['classes'] == classes and info['model'] == 'atss'
    assert info['device'] == 'cpu' and 'r18-slim' in info['recipe']
    # 205 train images, batch 4 -> 52 iterations per epoch; ~320 iterations -> 6 epochs; 640x480 -> 512x384
    assert (info['train_images'], info['iters_per_epoch'], info['epochs']) == (205, 52, 6)
    assert info['img_size'] == (512, 384)
    assert cfg.model.bbox_head.num_classes == 3 and info['num_classes_keys'] == ['model.bbox_head.num_classes']
    for key, ann in (('train_dataloader', 'train.txt'), ('val_dataloader', 'val.txt'), ('test_dataloader', 'test.txt')):
        ds = cfg[key].dataset
        assert ds.type == 'VOCDataset' and ds.ann_file == f'ImageSets/Main/{ann}'
        assert tuple(ds.metainfo.classes) == classes
        assert 'indices' not in ds  # real val split: nothing held out of train
    assert cfg.test_evaluator.type == 'CocoMetric' and cfg.test_evaluator.classwise is True
    assert 'ann_file' not in cfg.test_evaluator  # VOC: ground truth from the samples
    assert cfg.train_cfg.max_epochs == 6 and cfg.train_cfg.val_interval == 6
    assert cfg.param_scheduler[1].milestones == [5]
    assert cfg.param_scheduler[0].end == 62  # warm-up: a fifth of 6 x 52 iterations
    assert {'type': 'Resize', 'scale': (512, 384), 'keep_ratio': True} in cfg.train_dataloader.dataset.pipeline
    assert 'tta_pipeline' not in cfg
    # inheritance: the source names the recipe; the written config is the resolved one and reloads identically
    source = (tmp_path / 'zero_config_source.py').read_text()
    assert "_base_ = ['mmdet::atss/atss_r18-slim_fpn_bccd.py']" in source
    assert '_base_ =' not in (tmp_path / 'config.py').read_text()
    _reloads_identically(cfg, info)


def test_coco128_yolo_layout_config_faster_rcnn_and_options(tmp_path):
    cfg, info = build_zero_config(str(COCO128), model='faster-rcnn', epochs=3, img_size=320, work_dir=str(tmp_path),
                                  cfg_options={'train_dataloader.num_workers': 0})
    assert info['format'] == 'yolo' and len(info['classes']) == 80 and info['classes'][:2] == ('person', 'bicycle')
    assert cfg.train_dataloader.dataset.type == 'YOLODataset' and cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'val' and cfg.val_dataloader.dataset.test_mode is True
    # no test split: evaluated on val
    assert info['eval_split'] == 'val' and cfg.test_dataloader.dataset.split == 'val'
    assert cfg.model.roi_head.bbox_head.num_classes == 80
    assert 'num_classes' not in cfg.model.rpn_head  # class-agnostic RPN untouched
    assert cfg.train_cfg.max_epochs == 3 and info['img_size'] == (320, 240)
    assert cfg.train_dataloader.num_workers == 0  # cfg_options merged before writing
    assert cfg.optim_wrapper.optimizer.lr == 0.02
    _reloads_identically(cfg, info)


def test_balloon_coco_layout_picks_mask_rcnn(tmp_path):
    cfg, info = build_zero_config(str(BALLOON), work_dir=str(tmp_path))
    assert info['format'] == 'coco' and info['classes'] == ('balloon',)
    assert info['model'] == 'mask-rcnn'  # the json has polygons
    assert cfg.model.roi_head.bbox_head.num_classes == 1 and cfg.model.roi_head.mask_head.num_classes == 1
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train.json'
    assert cfg.val_dataloader.dataset.data_prefix.img == 'val/'
    assert cfg.val_evaluator.ann_file == str(BALLOON / 'annotations/instances_val.json')
    assert list(cfg.val_evaluator.metric) == ['bbox', 'segm']
    load = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'LoadAnnotations'][0]
    assert load['with_mask'] is True
    assert info['epochs'] == 20  # 61 images / batch 4 = 16 iterations per epoch
    _reloads_identically(cfg, info)


def test_no_val_split_holds_out_a_seeded_part_of_train(tmp_path):
    data = tmp_path / 'data'
    (data / 'annotations').mkdir(parents=True)
    (data / 'annotations' / 'instances_train.json').symlink_to(BALLOON / 'annotations/instances_train.json')
    (data / 'train').symlink_to(BALLOON / 'train')
    cfg, info = build_zero_config(str(data), model='fcos', work_dir=str(tmp_path / 'a'))
    train_idx, val_idx = cfg.train_dataloader.dataset.indices, cfg.val_dataloader.dataset.indices
    assert len(val_idx) == 9 and len(train_idx) == 52  # 15 % of 61
    assert sorted(train_idx + val_idx) == list(range(61))
    assert info['train_images'] == 52 and info['eval_split'] == 'val'
    assert cfg.val_dataloader.dataset.ann_file == cfg.train_dataloader.dataset.ann_file
    cfg2, _ = build_zero_config(str(data), model='fcos', work_dir=str(tmp_path / 'b'))
    assert cfg2.val_dataloader.dataset.indices == val_idx  # seeded
    _reloads_identically(cfg, info)


def test_retinanet_cpu_recipe_builds(tmp_path):
    from kiln.registry import MODELS, init_default_scope
    cfg, _ = build_zero_config(str(BCCD), model='retinanet', work_dir=str(tmp_path))
    assert cfg.model.type == 'RetinaNet' and cfg.model.backbone.depth == 18 and cfg.model.bbox_head.num_classes == 3
    assert cfg.train_dataloader.dataset.type == 'VOCDataset' and 'data_prefix' in cfg.train_dataloader.dataset
    init_default_scope('kiln.det')
    model = MODELS.build(cfg.model)
    assert model.bbox_head.num_classes == 3


def test_bad_requests(tmp_path):
    with pytest.raises(ValueError, match='mask-rcnn.*needs instance masks'):
        build_zero_config(str(BCCD), model='mask-rcnn', work_dir=str(tmp_path))
    with pytest.raises(ValueError, match='unknown model'):
        build_zero_config(str(BCCD), model='yolov8', work_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        build_zero_config(str(tmp_path / 'missing'), work_dir=str(tmp_path))


def test_kiln_train_data_end_to_end(tmp_path):
    """`kiln train --data` on BCCD with a tiny budget (8 train images, 4 val, 4 test, 128 px, 1 epoch):
    trains, evaluates on the test split and prints the per-class table; the written config is loadable."""
    work = tmp_path / 'work'
    cmd = [sys.executable, '-m', 'kiln.cli', 'train', '--data', str(BCCD), '--epochs', '1', '--img-size', '128',
           '--work-dir', str(work), '--no-progress', '--cfg-options', 'train_dataloader.dataset.indices=8',
           'val_dataloader.dataset.indices=4', 'test_dataloader.dataset.indices=4', 'train_dataloader.num_workers=0',
           'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
           'test_dataloader.persistent_workers=False']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert 'voc layout' in text and 'config written to' in text
    for name in ('Platelets', 'RBC', 'WBC'):  # the per-class AP table
        assert name in text
    assert 'kiln train --data: coco/bbox_mAP=' in out.stdout
    cfg = Config.fromfile(str(work / 'config.py'))
    assert cfg.train_dataloader.dataset.indices == 8 and cfg.train_cfg.max_epochs == 1
    assert any(p.suffix == '.pth' or p.suffix == '.safetensors' for p in work.rglob('epoch_1*'))


def test_kiln_train_without_config_or_data_is_an_error(capsys):
    from kiln.cli.main import main
    with pytest.raises(SystemExit) as exc:
        main(['train'])
    assert exc.value.code == 2
    assert 'config file is required' in capsys.readouterr().err


def test_class_names_differing_only_in_case_are_warned_about(tmp_path):
    assert similar_class_names(('RBC', 'WBC', 'rbc', 'traffic light', 'Traffic_Light', 'car')) == [
        ('RBC', 'rbc'), ('traffic light', 'Traffic_Light')]
    data = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (data / sub).mkdir(parents=True)
    ids = ['BloodImage_00000', 'BloodImage_00001', 'BloodImage_00003']
    for i in ids:
        text = (BCCD / 'Annotations' / f'{i}.xml').read_text()
        if i == 'BloodImage_00001':  # a typo made by hand in one file
            text = text.replace('<name>RBC</name>', '<name>rbc</name>')
        (data / 'Annotations' / f'{i}.xml').write_text(text)
        (data / 'JPEGImages' / f'{i}.jpg').symlink_to(BCCD / 'JPEGImages' / f'{i}.jpg')
    (data / 'ImageSets/Main/train.txt').write_text('\n'.join(ids[:2]) + '\n')
    (data / 'ImageSets/Main/val.txt').write_text(ids[2] + '\n')
    with pytest.warns(UserWarning, match=r"1 group\(s\) of class names differ only in case.*'RBC' / 'rbc'"):
        cfg, info = build_zero_config(str(data), work_dir=str(tmp_path / 'w'))
    assert info['classes'] == ('Platelets', 'RBC', 'WBC', 'rbc') and cfg.model.bbox_head.num_classes == 4
    [line] = info['warnings']
    assert '(4 classes in all)' in line and str(data) in line


# ------------------------------------------------------------------ bad data: errors and warnings in the log file
_SMALL_RUN = ['--epochs', '1', '--img-size', '128', '--model', 'fcos', '--no-progress', '--cfg-options',
              *(f'{s}_dataloader.{k}' for s in ('train', 'val', 'test')
                for k in ('num_workers=0', 'persistent_workers=False'))]


def _kiln(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``kiln ARGS`` (``python -m kiln.cli``) in a subprocess on 1 thread, run from ``cwd``."""
    return subprocess.run([sys.executable, '-m', 'kiln.cli', *args], cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=240)


def _kiln_train_data(data: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    return _kiln('train', '--data', str(data), '--work-dir', str(work), *extra)


def _balloon_copy(tmp_path: Path) -> tuple[Path, dict]:
    """balloon's COCO layout (images linked); returns the root and the train json to edit and write back."""
    import json
    root = tmp_path / 'balloon'
    (root / 'annotations').mkdir(parents=True)
    for split in ('train', 'val'):
        (root / split).symlink_to(BALLOON / split)
    (root / 'annotations/instances_val.json').write_text((BALLOON / 'annotations/instances_val.json').read_text())
    return root, json.loads((BALLOON / 'annotations/instances_train.json').read_text())


def test_error_before_the_runner_exists_is_in_the_work_dir_log(tmp_path):
    """`kiln train --data` on a COCO train json whose every box is broken (x2 < x1): the train split fails before
    the Runner exists; one `kiln train: error:` line (exit 2) and the error in <work_dir>/<timestamp>/<timestamp>.log,
    with the file and the annotation / image ids."""
    import json
    root, train = _balloon_copy(tmp_path)
    for ann in train['annotations']:
        x, y, w, h = ann['bbox']
        ann['bbox'] = [x + w, y, -w, h]
    (root / 'annotations/instances_train.json').write_text(json.dumps(train))
    out = _kiln_train_data(root, tmp_path / 'work')
    assert out.returncode == 2, out.stderr[-3000:]
    [line] = out.stderr.splitlines()  # nothing else on the terminal, no traceback
    expected = (f'{root}/annotations/instances_train.json: every one of the {len(train["annotations"])} '
                'annotation(s) of the selected classes has an unusable box, nothing is left to train on: '
                f'annotation {train["annotations"][0]["id"]} of image {train["annotations"][0]["image_id"]} '
                '(x2 <= x1 or y2 <= y1')
    assert line.startswith(f'kiln train: error: {expected}')
    [log] = list((tmp_path / 'work').glob('*/*.log'))
    assert line.endswith(f'(log file: {log})')
    [error] = [ln for ln in log.read_text().splitlines() if ' - ERROR - ' in ln]
    assert 'kiln train --data failed before training started: ValueError: ' + expected in error


def test_no_layout_error_is_in_the_default_work_dir_log(tmp_path, monkeypatch, capsys):
    from kiln.cli.main import main
    (tmp_path / 'my_data').mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(['train', '--data', 'my_data']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'kiln train: error: {tmp_path}/my_data: no dataset layout recognised') and err.count('\n') == 1
    [log] = list((tmp_path / 'work_dirs/zero_config_my_data').glob('*/*.log'))  # the default work dir of my_data
    text = log.read_text()
    assert ' - ERROR - ' in text and 'no dataset layout recognised' in text and '(log file: work_dirs/' in err


def test_data_warnings_are_on_the_terminal_and_in_the_log_once(tmp_path):
    """A VOC box lying outside its image is dropped with a warning (file, object index): shown once on the terminal
    and written once into the run's log file, although the data is read before the Runner exists (to size the
    run) and again by the Runner; class names differing only in case likewise."""
    data = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (data / sub).mkdir(parents=True)
    ids = [f'BloodImage_0000{i}' for i in range(6)]
    for i in ids:
        text = (BCCD / 'Annotations' / f'{i}.xml').read_text()
        if i == ids[1]:
            start = text.index('<bndbox>')
            text = (text[:start] + '<bndbox><xmin>700</xmin><ymin>10</ymin><xmax>720</xmax><ymax>30</ymax>'
                    + text[text.index('</bndbox>', start):])  # object #0: right of the 640-pixel-wide image
        if i == ids[2]:
            text = text.replace('<name>WBC</name>', '<name>wbc</name>')
        (data / 'Annotations' / f'{i}.xml').write_text(text)
        (data / 'JPEGImages' / f'{i}.jpg').symlink_to(BCCD / 'JPEGImages' / f'{i}.jpg')
    (data / 'ImageSets/Main/train.txt').write_text('\n'.join(ids) + '\n')
    out = _kiln_train_data(data, tmp_path / 'work', *_SMALL_RUN)
    assert out.returncode == 0, out.stderr[-3000:]
    [log] = list((tmp_path / 'work').glob('*/*.log'))
    text = log.read_text()
    dropped = f'dropped 1 box(es) with zero area after clipping to the image: {ids[1]}.xml object #0 (WBC)'
    similar = "1 group(s) of class names differ only in case, spaces, '_' or '-'"
    for message in (dropped, similar):
        assert out.stderr.count(message) == 1, out.stderr
        [line] = [ln for ln in text.splitlines() if message in ln]
        assert ' - WARNING - kiln train --data: ' in line
    assert "'WBC' / 'wbc'" in text


# ------------------------------------------------------------------ the written config reproduces the run
def _bccd_copy(root: Path, train: int, test: int) -> list[str]:
    """A VOC copy of the first ``train + test`` images of BCCD's train list (xml and jpg copied), with
    ``ImageSets/Main/train.txt`` and ``test.txt`` and no val list (zero-config holds a seeded part of train out)."""
    import shutil
    ids = (BCCD / 'ImageSets/Main/train.txt').read_text().split()[:train + test]
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True)
    for i in ids:
        shutil.copy(BCCD / 'Annotations' / f'{i}.xml', root / 'Annotations')
        shutil.copy(BCCD / 'JPEGImages' / f'{i}.jpg', root / 'JPEGImages')
    (root / 'ImageSets/Main/train.txt').write_text('\n'.join(ids[:train]) + '\n')
    (root / 'ImageSets/Main/test.txt').write_text('\n'.join(ids[train:]) + '\n')
    return ids


def _scalars(work: Path) -> list[dict]:
    """The lines of ``<work>/<timestamp>/vis_data/scalars.json`` without the timings (``time``, ``data_time``)."""
    import json
    [path] = list(work.glob('*/vis_data/scalars.json'))
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in d.items() if k not in ('time', 'data_time')} for d in lines]


def test_written_config_reproduces_the_run(tmp_path):
    """Issue #11: `kiln train <work_dir>/config.py` repeats a `kiln train --data` run. Run A: `kiln train --data`
    on a 12-image VOC copy of BCCD (relative paths, started from the folder holding the data; 10 train ids, 2 of
    which are held out as val, 2 test ids; 128 px, 1 epoch of 4 iterations, the default 2 dataloader workers;
    the run-summary and analysis hooks off to save time). Run B: `kiln train A/config.py --work-dir B` from another
    directory. Both on 1 thread (the guarantee holds for the same thread count: a different one changes the float
    rounding of the first iteration's losses at ~1e-7). Same weights (bit for bit), same losses, lr and grad norm
    at every iteration, same val metrics and val losses."""
    import torch
    _bccd_copy(tmp_path / 'data', train=10, test=2)
    a = _kiln('train', '--data', 'data', '--work-dir', 'A', '--epochs', '1', '--img-size', '128', '--no-progress',
              '--cfg-options', 'default_hooks.logger.interval=1', 'default_hooks.run_summary=None',
              'default_hooks.analysis=None', cwd=tmp_path)
    assert a.returncode == 0, a.stderr[-3000:]
    config = tmp_path / 'A' / 'config.py'
    b = _kiln('train', str(config), '--work-dir', str(tmp_path / 'B'), '--no-progress', cwd=REPO)
    assert b.returncode == 0, b.stderr[-3000:]

    ckpt_a = torch.load(tmp_path / 'A' / 'epoch_1.pth', map_location='cpu', weights_only=True)
    ckpt_b = torch.load(tmp_path / 'B' / 'epoch_1.pth', map_location='cpu', weights_only=True)
    weights_a, weights_b = ckpt_a['state_dict'], ckpt_b['state_dict']
    assert list(weights_a) == list(weights_b) and len(weights_a) > 100
    assert [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])] == []
    assert ckpt_a['meta']['iter'] == ckpt_b['meta']['iter'] == 4 and ckpt_a['meta']['seed'] == ckpt_b['meta']['seed']

    # A logs 4 train lines, the val line and (test split) the final test line; B the same without the test
    lines_a, lines_b = _scalars(tmp_path / 'A'), _scalars(tmp_path / 'B')
    assert len(lines_b) == 5 and len(lines_a) == 6
    assert lines_a[:5] == lines_b
    train = lines_b[:4]
    assert [d['iter'] for d in train] == [1, 2, 3, 4] and all(math.isfinite(d['loss']) for d in train)
    # the warm-up of the 4-iteration run is 2 iterations: the full lr (0.01) from the second one on
    assert [d['lr'] for d in train] == pytest.approx([1e-4, 0.01, 0.01, 0.01])
    val = lines_b[4]
    assert 'coco/bbox_mAP' in val and math.isfinite(val['val/loss']) and val['val/loss'] > 0
    assert 'coco/bbox_mAP' in lines_a[5] and 'val/loss' not in lines_a[5]  # A's test evaluation

    cfg = Config.fromfile(str(config))  # what the run was: held-out val, workers, seed, absolute paths
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'data')
    assert len(cfg.train_dataloader.dataset.indices) == 8 and len(cfg.val_dataloader.dataset.indices) == 2
    assert cfg.train_dataloader.num_workers == 2 and cfg.randomness.seed == 0
    assert cfg.work_dir == str(tmp_path / 'A')
