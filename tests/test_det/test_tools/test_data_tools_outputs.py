"""The data tools' outputs checked on the shared real datasets: browse-dataset draws boxes and masks where the
objects are (also for val pipelines whose ground truth stays in original pixels), every `kiln convert` kind
through the CLI, data-stats from a CONFIG (aspect ratios in the JSON), and check-data on a broken YOLO copy
(class id out of range, empty label file, unreadable image, box outside the image) and a COCO box outside."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kiln.cli.main import main
from kiln.det.datasets import CocoDataset, YOLODataset
from kiln.det.datasets.checks import check_coco
from kiln.det.datasets.layout import detect_layout

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / 'shared' / 'data'
BCCD, COCO128, BALLOON = SHARED / 'bccd', SHARED / 'coco128', SHARED / 'balloon'
FCOS_BCCD = REPO / 'configs/fcos/fcos_r18-slim_fpn_bccd.py'
MASK_BALLOON = REPO / 'configs/mask_rcnn/mask-rcnn_r18-slim_fpn_balloon.py'
pytestmark = pytest.mark.skipif(not (BALLOON.is_dir() and COCO128.is_dir() and BCCD.is_dir()),
                                reason='shared data not beside the repo')


def _dataset(config: Path, stage: str):
    from kiln.config import Config
    from kiln.registry import DATASETS, init_default_scope
    cfg = Config.fromfile(str(config))
    init_default_scope('kiln.det')
    return DATASETS.build(cfg[f'{stage}_dataloader'].dataset)


def _drawn_and_plain(png: Path, packed: dict) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    drawn = np.asarray(Image.open(png).convert('RGB')).astype(np.int16)
    plain = packed['inputs'].permute(1, 2, 0).numpy()[..., ::-1].astype(np.int16)
    assert drawn.shape == plain.shape
    return drawn, plain


def _boxes_and_masks_in_drawn_frame(sample, original_frame: bool):
    gt = sample.gt_instances
    boxes = gt.bboxes.numpy().astype(np.float64)
    masks = gt.masks if 'masks' in gt else None
    if original_frame:
        sx, sy = sample.metainfo['scale_factor']
        boxes = boxes * [sx, sy, sx, sy]
        if masks is not None:
            masks = masks.resize(tuple(sample.metainfo['img_shape']))
    return boxes, (None if masks is None else masks.to_ndarray().astype(bool))


@pytest.mark.parametrize('stage', ['val', 'train'])
def test_browse_dataset_draws_masks_on_the_balloons(tmp_path, monkeypatch, stage):
    monkeypatch.chdir(REPO)  # the config's data_root is relative to the repository
    out_dir = tmp_path / 'browse'
    np.random.seed(0)  # the train pipeline's RandomFlip draws from numpy's global generator
    assert main(['browse-dataset', str(MASK_BALLOON), '--output-dir', str(out_dir), '--stage', stage, '-n', '1']) == 0
    [png] = sorted(out_dir.glob('*.png'))
    np.random.seed(0)  # the same flip again
    packed = _dataset(MASK_BALLOON, stage)[0]
    sample = packed['data_samples']
    if stage == 'val':  # the test pipeline loads the annotations after Resize: gt in original pixels
        assert sample.gt_instances.masks.height != sample.metainfo['img_shape'][0]
    boxes, masks = _boxes_and_masks_in_drawn_frame(sample, original_frame=stage == 'val')
    drawn, plain = _drawn_and_plain(png, packed)
    changed = np.abs(drawn - plain).max(-1) > 8
    inside = masks.any(0)
    assert inside.sum() > 1000
    assert changed[inside].mean() > 0.9  # the mask fill covers the balloons
    far = np.ones_like(inside)
    for x1, y1, x2, y2 in boxes:  # away from every box (and its label above it) nothing is drawn
        far[max(int(y1) - 40, 0):int(y2) + 10, max(int(x1) - 10, 0):int(x2) + 10] = False
    assert far.sum() > 0.3 * far.size and changed[far].mean() < 0.01


def test_browse_dataset_val_boxes_sit_on_the_objects_of_the_resized_image(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out_dir = tmp_path / 'browse'
    assert main(['browse-dataset', str(FCOS_BCCD), '--output-dir', str(out_dir), '--stage', 'val', '-n', '1']) == 0
    [png] = sorted(out_dir.glob('*.png'))
    packed = _dataset(FCOS_BCCD, 'val')[0]
    sample = packed['data_samples']
    assert sample.metainfo['scale_factor'] == pytest.approx((0.8, 0.8))  # 640x480 -> 512x384
    boxes, _ = _boxes_and_masks_in_drawn_frame(sample, original_frame=True)
    drawn, plain = _drawn_and_plain(png, packed)
    changed = np.abs(drawn - plain).max(-1) > 8
    h, w = changed.shape
    on_edge = []
    for x1, y1, x2, y2 in boxes:  # the bottom edge of each box (the label covers the top one)
        y = min(int(round(y2)), h - 1)
        xs = slice(int(x1) + 2, max(int(x2) - 2, int(x1) + 3))
        on_edge.append(changed[max(y - 2, 0):y + 3, xs].any(0).mean())
    assert np.median(on_edge) > 0.9


def test_kiln_convert_cli_every_kind_writes_a_dataset_that_reads_back(tmp_path, capsys):
    # coco2yolo: balloon (COCO folder) -> YOLO layout with the same boxes
    assert main(['convert', 'coco2yolo', str(BALLOON), str(tmp_path / 'yolo')]) == 0
    yolo = YOLODataset(ann_file=str(tmp_path / 'yolo/data.yaml'), split='val', test_mode=True)
    coco = CocoDataset(ann_file=str(BALLOON / 'annotations/instances_val.json'),
                       data_prefix=dict(img=str(BALLOON / 'val')), metainfo=dict(classes=('balloon',)), test_mode=True)
    assert len(yolo) == len(coco) == 13
    assert sum(len(yolo.get_data_info(i)['instances']) for i in range(13)) == 50
    # yolo2coco: coco128 -> COCO jsons with every label line
    assert main(['convert', 'yolo2coco', str(COCO128), str(tmp_path / 'coco')]) == 0
    back = json.loads((tmp_path / 'coco/annotations/instances_train.json').read_text())
    assert len(back['images']) == 128 and len(back['annotations']) == 929 and len(back['categories']) == 80
    # labelme2coco with --classes fixing the ids
    src = tmp_path / 'labelme'
    src.mkdir()
    shutil.copy(BCCD / 'JPEGImages/BloodImage_00000.jpg', src / 'a.jpg')
    shapes = [dict(label='wbc', shape_type='rectangle', points=[[100, 120], [50, 20]])]
    (src / 'a.json').write_text(json.dumps(dict(shapes=shapes, imagePath='a.jpg', imageHeight=480, imageWidth=640)))
    assert main(['convert', 'labelme2coco', str(src), str(tmp_path / 'lm'), '--classes', 'rbc', 'wbc']) == 0
    data = json.loads((tmp_path / 'lm/annotations/instances_train.json').read_text())
    assert [c['name'] for c in data['categories']] == ['rbc', 'wbc']
    [ann] = data['annotations']
    assert ann['bbox'] == [50, 20, 50, 100] and data['categories'][1]['id'] == ann['category_id']
    ds_cfg = detect_layout(str(tmp_path / 'lm'))['splits']['train']
    from kiln.registry import DATASETS
    ds = DATASETS.build(dict(ds_cfg, metainfo=dict(classes=('rbc', 'wbc')), test_mode=True))
    assert ds.get_data_info(0)['instances'][0]['bbox_label'] == 1 and Path(ds.get_data_info(0)['img_path']).is_file()
    out = capsys.readouterr().out
    assert 'train' in out


def test_data_stats_from_a_config_writes_the_aspect_ratios(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out_dir = tmp_path / 'stats'
    assert main(['data-stats', str(FCOS_BCCD), '--stage', 'test', '--out-dir', str(out_dir)]) == 0
    [json_file] = list(out_dir.glob('*.json'))
    stats = json.loads(json_file.read_text())
    ds = _dataset(FCOS_BCCD, 'test')
    boxes = np.array([i['bbox'] for k in range(len(ds)) for i in ds.get_data_info(k)['instances']])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert stats['summary']['num_images'] == len(ds) == 72
    np.testing.assert_allclose(stats['box_aspect'], h / w, rtol=1e-6)
    np.testing.assert_allclose(stats['box_sqrt_area'], np.sqrt(w * h), rtol=1e-6)
    assert json_file.with_suffix('.png').is_file()


def _broken_yolo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Four coco128 train images with their labels, broken in four ways; returns the root and the stems."""
    root = tmp_path / 'c128'
    (root / 'images/train').mkdir(parents=True)
    (root / 'labels/train').mkdir(parents=True)
    stems = sorted(p.stem for p in (COCO128 / 'labels/train2017').glob('*.txt'))[:4]
    for s in stems:
        shutil.copy(COCO128 / 'images/train2017' / f'{s}.jpg', root / 'images/train')
        shutil.copy(COCO128 / 'labels/train2017' / f'{s}.txt', root / 'labels/train')
    names = (COCO128 / 'data.yaml').read_text().split('names:', 1)[1]
    (root / 'data.yaml').write_text(f'path: .\ntrain: images/train\nval: images/train\nnames:{names}')
    bad = dict(zip(('out_of_range', 'empty', 'unreadable', 'outside'), stems))
    lines = (root / 'labels/train' / f'{bad["out_of_range"]}.txt').read_text().splitlines()
    lines[1] = '80 ' + lines[1].split(' ', 1)[1]
    (root / 'labels/train' / f'{bad["out_of_range"]}.txt').write_text('\n'.join(lines) + '\n')
    (root / 'labels/train' / f'{bad["empty"]}.txt').write_text('')
    (root / 'images/train' / f'{bad["unreadable"]}.jpg').write_bytes(b'this is not an image')
    with open(root / 'labels/train' / f'{bad["outside"]}.txt', 'a') as f:
        f.write('0 1.4 0.5 0.2 0.2\n')
    return root, bad


def test_check_data_on_a_broken_yolo_copy_names_file_and_line(tmp_path, capsys):
    root, bad = _broken_yolo(tmp_path)
    report_file = tmp_path / 'report.json'
    assert main(['check-data', '--data', str(root), '--stage', 'train', '--json', str(report_file)]) == 1
    out = capsys.readouterr().out
    problems = json.loads(report_file.read_text())['problems']

    def find(code):
        return [p for p in problems if p['code'] == code]

    [oor] = find('label_out_of_range')
    assert oor['file'].endswith(f'{bad["out_of_range"]}.txt') and oor['index'] == 'line 2'
    assert oor['severity'] == 'error' and 'class id 80 out of range 0..79' in oor['message']
    assert any(p['file'].endswith(f'{bad["empty"]}.txt') for p in find('empty_annotation'))
    [unreadable] = find('unreadable_image')
    assert unreadable['file'].endswith(f'{bad["unreadable"]}.jpg') and unreadable['severity'] == 'error'
    [outside] = find('box_outside_image')
    n_lines = len((root / 'labels/train' / f'{bad["outside"]}.txt').read_text().splitlines())
    assert outside['file'].endswith(f'{bad["outside"]}.txt') and outside['index'] == f'line {n_lines}'
    for key in bad.values():
        assert key in out  # every broken file is named on the terminal too


def test_check_coco_reports_a_box_outside_the_image_with_its_ids(tmp_path):
    data = json.loads((BALLOON / 'annotations/instances_val.json').read_text())
    ann = data['annotations'][3]
    img = next(im for im in data['images'] if im['id'] == ann['image_id'])
    ann['bbox'] = [img['width'] + 5, 10, 30, 30]
    path = tmp_path / 'val.json'
    path.write_text(json.dumps(data))
    rep = check_coco(str(path), str(BALLOON / 'val'))
    [p] = [p for p in rep.problems if p.code == 'box_outside_image']
    assert p.severity == 'warning' and str(ann['id']) in p.index and str(img['id']) in p.index
    assert f'{img["width"]}x{img["height"]}' in p.message
