"""kiln check-data / data-stats / browse-dataset / convert / test (checkpoint mismatch), detect_layout and the
converters, on the shared real datasets (corrupted copies in tmp_path)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kiln.cli.main import main
from kiln.det.datasets import CocoDataset, VOCDataset, YOLODataset
from kiln.det.datasets.converters import coco2yolo, labelme2coco, yolo2coco
from kiln.det.datasets.layout import detect_layout

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / 'shared' / 'data'
BCCD, COCO128, BALLOON = SHARED / 'bccd', SHARED / 'coco128', SHARED / 'balloon'
BCCD_CLASSES = ('RBC', 'WBC', 'Platelets')
FCOS_BCCD = REPO / 'configs/fcos/fcos_r18-slim_fpn_bccd.py'


def _build(cfg: dict, **kwargs):
    from kiln.registry import DATASETS
    return DATASETS.build(dict(cfg, **kwargs))


def _boxes(ds) -> list[np.ndarray]:
    return [np.array([i['bbox'] for i in ds.get_data_info(k)['instances']], dtype=np.float64).reshape(-1, 4)
            for k in range(len(ds))]


def test_detect_layout_on_the_shared_datasets():
    bccd = detect_layout(str(BCCD))
    assert bccd['format'] == 'voc' and set(bccd['classes']) == set(BCCD_CLASSES)
    assert set(bccd['splits']) == {'train', 'val', 'trainval', 'test'}
    c128 = detect_layout(str(COCO128))
    assert c128['format'] == 'yolo' and len(c128['classes']) == 80 and set(c128['splits']) == {'train', 'val'}
    c128_coco = detect_layout(str(COCO128), format='coco')
    assert c128_coco['splits']['val']['ann_file'] == 'annotations/instances_val2017.json'
    assert c128_coco['splits']['val']['data_prefix'] == dict(img='images/val2017/')
    balloon = detect_layout(str(BALLOON))
    assert balloon['format'] == 'coco' and balloon['classes'] == ('balloon',)
    ds = _build(balloon['splits']['val'])
    assert len(ds) == 13 and sum(len(b) for b in _boxes(ds)) == 50
    with pytest.raises(ValueError, match='no dataset layout recognised'):
        detect_layout(str(REPO / 'docs'))


def _broken_voc(tmp_path: Path) -> Path:
    root = tmp_path / 'bccd'
    ids = ['BloodImage_00000', 'BloodImage_00001', 'BloodImage_00003', 'BloodImage_00004']
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True)
    for i in ids:
        shutil.copy(BCCD / 'Annotations' / f'{i}.xml', root / 'Annotations')
        shutil.copy(BCCD / 'JPEGImages' / f'{i}.jpg', root / 'JPEGImages')
    (root / 'ImageSets/Main/train.txt').write_text('\n'.join(ids) + '\n')
    (root / 'JPEGImages/BloodImage_00001.jpg').unlink()  # missing image
    jpg = root / 'JPEGImages/BloodImage_00003.jpg'
    jpg.write_bytes(jpg.read_bytes()[:-20])  # truncated
    xml = root / 'Annotations/BloodImage_00004.xml'
    text = xml.read_text().replace('<name>WBC</name>', '<name>wbc</name>', 1)
    start = text.index('<xmax>') + len('<xmax>')
    text = text[:start] + '1' + text[text.index('</xmax>'):]  # first object: xmax < xmin
    xml.write_text(text)
    return root


def test_check_data_lists_every_problem_with_file_and_index(tmp_path, capsys):
    root = _broken_voc(tmp_path)
    out_json = tmp_path / 'problems.json'
    assert main(['check-data', '--data', str(root), '--json', str(out_json)]) == 1
    out = capsys.readouterr().out
    assert 'BloodImage_00001.jpg [train.txt:2]: image file does not exist' in out
    assert 'BloodImage_00003.jpg [train.txt:3]: truncated JPEG' in out
    assert "is not in classes" not in out  # --data: the classes are the names found, 'wbc' included ...
    report = json.loads(out_json.read_text())
    codes = {p['code'] for p in report['problems']}
    assert {'missing_image', 'truncated_image', 'degenerate_box'} <= codes
    [bad] = [p for p in report['problems'] if p['code'] == 'degenerate_box' and p['severity'] == 'error']
    assert bad['file'].endswith('BloodImage_00004.xml') and bad['index'] == 'object #0'
    # ... with the classes of a config, the unknown name gets its suggestion
    assert main(['check-data', str(FCOS_BCCD), '--stage', 'train', '--cfg-options',
                 f'train_dataloader.dataset.data_root={root}/']) == 1
    assert "name 'wbc' is not in classes ('RBC', 'WBC', 'Platelets') (did you mean 'WBC'?)" in capsys.readouterr().out


def test_check_data_config_clean_data_and_num_classes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the config's data_root is relative to the working directory
    assert main(['check-data', str(FCOS_BCCD), '--stage', 'test', '--quiet']) == 0
    assert '[test]' in capsys.readouterr().out
    assert main(['check-data', str(FCOS_BCCD), '--stage', 'test', '--no-images',
                 '--cfg-options', 'model.bbox_head.num_classes=4']) == 1
    assert 'model.bbox_head.num_classes=4 but the dataset has 3 classes' in capsys.readouterr().out


def test_data_stats_counts_and_files(tmp_path, capsys):
    out_dir = tmp_path / 'stats'
    assert main(['data-stats', '--data', str(BCCD), '--stage', 'test', '--out-dir', str(out_dir)]) == 0
    stats = json.loads((out_dir / 'data_stats_test.json').read_text())
    ds = VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                    metainfo=dict(classes=tuple(sorted(BCCD_CLASSES))), test_mode=True)
    assert stats['summary']['num_images'] == len(ds) == 72
    per_class = {c['name']: c['instances'] for c in stats['summary']['classes']}
    labels = [i['bbox_label'] for k in range(len(ds)) for i in ds.get_data_info(k)['instances']]
    assert per_class == {c: labels.count(j) for j, c in enumerate(sorted(BCCD_CLASSES))}
    assert len(stats['box_sqrt_area']) == len(labels)
    png = out_dir / 'data_stats_test.png'
    from PIL import Image
    with Image.open(png) as im:
        assert im.size[0] > 500 and im.size[1] > 400
    assert 'Platelets' in capsys.readouterr().out


def test_browse_dataset_draws_pipeline_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out_dir = tmp_path / 'browse'
    assert main(['browse-dataset', str(FCOS_BCCD), '--output-dir', str(out_dir), '--stage', 'val', '-n', '2']) == 0
    files = sorted(out_dir.glob('*.png'))
    assert len(files) == 2 and files[0].name.startswith('0000_BloodImage_')
    from PIL import Image

    from kiln.config import Config
    from kiln.registry import DATASETS, init_default_scope
    cfg = Config.fromfile(str(FCOS_BCCD))
    init_default_scope('kiln.det')
    packed = DATASETS.build(cfg.val_dataloader.dataset)[0]['inputs']  # (3, H, W) BGR
    drawn = np.asarray(Image.open(files[0]).convert('RGB'))
    plain = packed.permute(1, 2, 0).numpy()[..., ::-1]
    assert drawn.shape == plain.shape
    changed = np.any(drawn != plain, axis=2).mean()
    assert 0.01 < changed < 0.6  # boxes and labels drawn over the unchanged image


def test_voc2coco_round_trip_keeps_every_box(tmp_path, capsys):
    assert main(['convert', 'voc2coco', str(BCCD), str(tmp_path / 'out'), '--classes', *BCCD_CLASSES]) == 0
    assert 'test: json=' in capsys.readouterr().out
    coco = _build(detect_layout(str(tmp_path / 'out'))['splits']['test'], metainfo=dict(classes=BCCD_CLASSES),
                  test_mode=True)
    voc = VOCDataset(data_root=str(BCCD), ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                     metainfo=dict(classes=BCCD_CLASSES), test_mode=True)
    assert len(coco) == len(voc) == 72
    for a, b in zip(_boxes(coco), _boxes(voc)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert Path(coco.get_data_info(0)['img_path']).is_file()


def test_coco2yolo_and_yolo2coco_keep_boxes(tmp_path):
    coco2yolo(str(BALLOON), str(tmp_path / 'yolo'))
    yolo = YOLODataset(ann_file=str(tmp_path / 'yolo/data.yaml'), split='val', test_mode=True)
    coco = CocoDataset(ann_file=str(BALLOON / 'annotations/instances_val.json'), data_prefix=dict(img=str(BALLOON / 'val')),
                       metainfo=dict(classes=('balloon',)), test_mode=True)
    assert len(yolo) == len(coco) == 13
    by_path = {Path(coco.get_data_info(k)['img_path']).name: b for k, b in enumerate(_boxes(coco))}
    for k, b in enumerate(_boxes(yolo)):
        ref = by_path[Path(yolo.get_data_info(k)['img_path']).name]
        np.testing.assert_allclose(np.sort(b, axis=0), np.sort(ref, axis=0), atol=0.01 * 2048 / 1000)

    summary = yolo2coco(str(COCO128), str(tmp_path / 'coco'))
    assert summary['splits']['train']['annotations'] == 929
    back = _build(detect_layout(str(tmp_path / 'coco'))['splits']['train'], test_mode=True)
    src = YOLODataset(ann_file=str(COCO128 / 'data.yaml'), split='train', test_mode=True)
    assert len(back) == len(src) == 128
    for a, b in zip(_boxes(back), _boxes(src)):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_labelme2coco(tmp_path):
    src = tmp_path / 'labelme'
    src.mkdir()
    shutil.copy(BCCD / 'JPEGImages/BloodImage_00000.jpg', src / 'a.jpg')
    shapes = [dict(label='cell', shape_type='polygon', points=[[10, 10], [60, 10], [60, 40]]),
              dict(label='wbc', shape_type='rectangle', points=[[100, 120], [50, 20]]),
              dict(label='cell', shape_type='circle', points=[[5, 5], [9, 9]])]
    (src / 'a.json').write_text(json.dumps(dict(shapes=shapes, imagePath='a.jpg', imageHeight=480, imageWidth=640)))
    summary = labelme2coco(str(src), str(tmp_path / 'out'))
    assert summary['classes'] == ['cell', 'wbc'] and len(summary['skipped']) == 1 and 'circle' in summary['skipped'][0]
    data = json.loads((tmp_path / 'out/annotations/instances_train.json').read_text())
    poly, rect = data['annotations']
    assert poly['bbox'] == [10, 10, 50, 30] and 700 < poly['area'] < 800  # triangle of 50 x 30 / 2 pixels
    assert rect['bbox'] == [50, 20, 50, 100] and rect['area'] == pytest.approx(5000, rel=0.05)
    ds = _build(detect_layout(str(tmp_path / 'out'))['splits']['train'])
    assert len(ds) == 1 and Path(ds.get_data_info(0)['img_path']).is_file()


def test_kiln_test_refuses_a_checkpoint_whose_head_does_not_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    torch.set_num_threads(1)
    from kiln.config import Config
    from kiln.registry import MODELS, init_default_scope
    cfg = Config.fromfile(str(FCOS_BCCD))
    init_default_scope('kiln.det')
    cfg.model.bbox_head.num_classes = 4
    ckpt = tmp_path / 'other_head.pth'
    torch.save(dict(meta=dict(), state_dict=MODELS.build(cfg.model).state_dict()), ckpt)
    code = main(['test', str(FCOS_BCCD), str(ckpt), '--work-dir', str(tmp_path / 'work')])
    err = capsys.readouterr().err
    assert code == 2
    assert 'does not fit the model of the config' in err and 'size mismatch for bbox_head.conv_cls' in err
    assert err.count('does not fit the model of the config') == 1  # the CLI error line only, not also the logger
    [log] = list((tmp_path / 'work').glob('*/*.log'))
    assert 'does not fit the model of the config' in log.read_text()  # in the run's log file too
