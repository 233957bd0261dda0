"""Bad data found as a new user would (issue 11): each case ends in a clear error or a warning with counts,
file and index, and reaches the run's log file. Real images; corrupted copies are made in tmp_path."""
from __future__ import annotations

import json
import logging
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch.nn as nn

from kiln.det.datasets import CocoDataset, VOCDataset
from kiln.det.datasets.checks import check_coco, check_dataset, check_num_classes, check_voc
from kiln.det.datasets.transforms.loading import LoadImageFromFile
from kiln.det.engine.hooks import DataCheckHook

SHARED = Path(__file__).parents[3].parent / 'shared' / 'data'
COCO128 = SHARED / 'coco128'
BCCD = SHARED / 'bccd'
BCCD_CLASSES = ('RBC', 'WBC', 'Platelets')


def _coco_subset(tmp_path: Path, n: int = 6) -> tuple[dict, Path]:
    """The first ``n`` coco128 train images that have annotations, with their annotations."""
    data = json.loads((COCO128 / 'annotations/instances_train2017.json').read_text())
    with_anns = {a['image_id'] for a in data['annotations']}
    images = [im for im in data['images'] if im['id'] in with_anns][:n]
    ids = {im['id'] for im in images}
    data = dict(images=images, annotations=[a for a in data['annotations'] if a['image_id'] in ids],
                categories=data['categories'])
    return data, tmp_path / 'ann.json'


def _coco(ann: Path, **kwargs) -> CocoDataset:
    return CocoDataset(ann_file=str(ann), data_prefix=dict(img=str(COCO128 / 'images/train2017') + '/'), **kwargs)


def _break_boxes(data: dict, image_ids: list[int]) -> list[int]:
    """x2 < x1, zero area, or fully outside, for every annotation of ``image_ids``; returns the annotation ids."""
    broken = []
    size = {im['id']: (im['width'], im['height']) for im in data['images']}
    for k, ann in enumerate(a for a in data['annotations'] if a['image_id'] in image_ids):
        x, y, w, h = ann['bbox']
        ann['bbox'] = [[x + w, y, -w, h], [x, y, 0.0, h], [size[ann['image_id']][0] + 10, y, w, h]][k % 3]
        broken.append(ann['id'])
    return broken


def test_coco_bad_boxes_warn_with_counts_and_ids(tmp_path):
    data, ann = _coco_subset(tmp_path)
    victims = [im['id'] for im in data['images'][:3]]
    broken = _break_boxes(data, victims)
    ann.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=rf'dropped {len(broken)} annotation\(s\) with an unusable box') as rec:
        ds = _coco(ann)
    msg = next(str(w.message) for w in rec if 'dropped' in str(w.message))
    assert '3 of 6 image(s) have no box left' in msg
    assert all(str(i) in msg for i in victims)  # the emptied images are named
    assert f'annotation {broken[0]} of image' in msg
    assert ds.data_warnings == [msg]
    assert sum(len(ds.get_data_info(i)['instances']) == 0 for i in range(len(ds))) == 3


def test_coco_every_box_bad_is_an_error_for_training_not_for_testing(tmp_path):
    data, ann = _coco_subset(tmp_path)
    _break_boxes(data, [im['id'] for im in data['images']])
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='nothing is left to train on'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _coco(ann)
    with pytest.warns(UserWarning, match='6 of 6 image'):
        assert len(_coco(ann, test_mode=True)) == 6


def test_coco_size_mismatch_and_no_images(tmp_path):
    data, ann = _coco_subset(tmp_path)
    data['images'][1]['width'] += 100
    ann.write_text(json.dumps(data))
    bad_id = data['images'][1]['id']
    with pytest.warns(UserWarning, match=rf'width/height of 1 image\(s\) do not match.*image {bad_id} '):
        _coco(ann)
    rep = check_coco(str(ann), str(COCO128 / 'images/train2017'))
    [p] = [p for p in rep.problems if p.code == 'size_mismatch']
    assert p.severity == 'error' and p.index == f'image {bad_id}'

    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps(dict(images=[], annotations=[], categories=data['categories'])))
    with pytest.raises(ValueError, match='lists no images'):
        _coco(empty, test_mode=True)
    assert [p.code for p in check_coco(str(empty)).errors] == ['no_images']


def _voc_copy(tmp_path: Path, ids: list[str], rename: dict[str, str]) -> Path:
    root = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True)
    for i in ids:
        text = (BCCD / 'Annotations' / f'{i}.xml').read_text()
        for old, new in rename.items():
            text = text.replace(f'<name>{old}</name>', f'<name>{new}</name>')
        (root / 'Annotations' / f'{i}.xml').write_text(text)
        shutil.copy(BCCD / 'JPEGImages' / f'{i}.jpg', root / 'JPEGImages' / f'{i}.jpg')
    (root / 'ImageSets/Main/train.txt').write_text('\n'.join(ids) + '\n')
    return root


def _voc(root: Path, **kwargs) -> VOCDataset:
    return VOCDataset(data_root=str(root), ann_file='ImageSets/Main/train.txt', data_prefix=dict(sub_data_root=''),
                      metainfo=dict(classes=BCCD_CLASSES), **kwargs)


def test_voc_names_not_in_classes_warn_with_close_class(tmp_path):
    # BloodImage_00003 holds one WBC and one Platelets object
    root = _voc_copy(tmp_path, ['BloodImage_00000', 'BloodImage_00003'], {'WBC': 'wbc', 'Platelets': 'Platlets'})
    with pytest.warns(UserWarning, match='ignored') as rec:
        ds = _voc(root)
    msg = next(str(w.message) for w in rec if 'ignored' in str(w.message))
    assert "'wbc' x2 (did you mean 'WBC'?)" in msg
    assert "(did you mean 'Platelets'?)" in msg and "'Platlets'" in msg
    assert 'BloodImage_00000.xml object #' in msg
    labels = {int(i['bbox_label']) for k in range(len(ds)) for i in ds.get_data_info(k)['instances']}
    assert labels == {0}  # only RBC left
    rep = check_voc(str(root / 'ImageSets/Main/train.txt'), str(root), BCCD_CLASSES)
    unknown = [p for p in rep.problems if p.code == 'unknown_class']
    assert len(unknown) == 3 and all(p.index.startswith('object #') for p in unknown)


def test_voc_nothing_left_is_an_error(tmp_path):
    root = _voc_copy(tmp_path, ['BloodImage_00000'], {'WBC': 'wbc', 'RBC': 'rbc', 'Platelets': 'plt'})
    with pytest.raises(ValueError, match="no object is left to train on.*did you mean 'RBC'"):
        _voc(root)


def test_num_classes_mismatch_is_checked():
    cfg = dict(type='FasterRCNN', rpn_head=dict(num_classes=1),
               roi_head=dict(bbox_head=dict(num_classes=80), mask_head=dict(num_classes=3)))
    [p] = check_num_classes(cfg, BCCD_CLASSES)
    assert p.index == 'model.roi_head.bbox_head.num_classes' and 'set roi_head.bbox_head.num_classes=3' in p.message
    assert check_num_classes(dict(bbox_head=dict(num_classes=3)), BCCD_CLASSES) == []


class _Head(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(1, num_classes, 1)


def test_data_check_hook_logs_dataset_warnings_to_the_log_file_and_checks_num_classes(tmp_path):
    root = _voc_copy(tmp_path, ['BloodImage_00000'], {'WBC': 'wbc'})
    with pytest.warns(UserWarning):
        ds = _voc(root)
    log_file = tmp_path / 'run.log'
    logger = logging.Logger('kiln')
    logger.addHandler(logging.FileHandler(log_file))
    model = nn.Module()
    model.bbox_head = _Head(4)
    runner = SimpleNamespace(_train_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=ds)),
                             _val_loop=None, _test_loop=None, model=model, logger=logger)
    with pytest.raises(ValueError, match=r'model.bbox_head.num_classes=4 but the dataset has 3 classes'):
        DataCheckHook().before_run(runner)
    text = log_file.read_text()
    assert "train data: VOCDataset" in text and "'wbc' x1 (did you mean 'WBC'?)" in text
    assert 'num_classes=4' in text  # the error is in the log too
    model.bbox_head = _Head(3)
    DataCheckHook().before_run(runner)  # fits: no error


def test_truncated_jpeg_decodes_with_a_warning_and_check_data_reports_it(tmp_path):
    root = _voc_copy(tmp_path, ['BloodImage_00000', 'BloodImage_00001'], {})
    img = root / 'JPEGImages/BloodImage_00001.jpg'
    full = LoadImageFromFile()(dict(img_path=str(img)))['img']
    img.write_bytes(img.read_bytes()[:-20])
    for backend in ('cv2', 'pillow'):
        with pytest.warns(UserWarning, match=r"BloodImage_00001.jpg' is a truncated JPEG"):
            out = LoadImageFromFile(imdecode_backend=backend)(dict(img_path=str(img)))['img']
        assert out.shape == full.shape == (480, 640, 3)
        assert np.array_equal(out[:400], full[:400])  # everything but the lost bottom rows
    rep = check_dataset(dict(type='VOCDataset', data_root=str(root), ann_file='ImageSets/Main/train.txt',
                             data_prefix=dict(sub_data_root=''), metainfo=dict(classes=BCCD_CLASSES)))
    [p] = [p for p in rep.problems if p.code == 'truncated_image']
    assert p.file.endswith('BloodImage_00001.jpg') and p.index == 'train.txt:2' and p.severity == 'warning'


class _Run(SimpleNamespace):
    """What a run left: ``log`` (the text of its log file) and ``terminal`` (stderr: the logger's console lines
    and the Python warnings that escaped the run, one per line)."""

    def once(self, text: str) -> str:
        """The one line of the log file holding ``text``, after checking that ``text`` is also exactly once on
        the terminal (logged once, not also printed as a Python warning)."""
        assert self.terminal.count(text) == 1, self.terminal
        [line] = [ln for ln in self.log.splitlines() if text in ln]
        return line


def _run(tmp_path: Path, capfd, dataset: dict | Any, raises: str | None = None, head_classes: int | None = None,
         val_dataset: dict | None = None) -> _Run:
    """One epoch of a real Runner (with DataCheckHook) on ``dataset`` (a dataset config, or a built DataLoader);
    ``val_dataset`` adds a val loop, ``head_classes`` a head with that ``num_classes``. With ``raises``, training
    must fail with a ``ValueError`` matching it."""
    import torch

    from kiln.model import BaseModel
    from kiln.runner import Runner

    class MeanNet(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            if head_classes is not None:
                self.bbox_head = _Head(head_classes)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return dict(loss=((torch.stack([i.float().mean() / 255 for i in inputs]) - self.w) ** 2).mean())

    def loader(ds):
        if not isinstance(ds, dict):
            return ds
        return dict(dataset=dict(ds, pipeline=PIPELINE), batch_size=3, sampler=dict(type='DefaultSampler',
                                                                                     shuffle=False))

    val = dict(val_dataloader=loader(val_dataset), val_cfg=dict(),
               val_evaluator=dict(type='CocoMetric')) if val_dataset else {}
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter('always')  # every warning is shown (logged) each time it is raised
        runner = Runner(model=MeanNet(), work_dir=str(tmp_path / 'work'), train_dataloader=loader(dataset),
                        train_cfg=dict(by_epoch=True, max_epochs=1),
                        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                        default_hooks=dict(checkpoint=None, data_check=dict(type='DataCheckHook')),
                        randomness=dict(seed=0), log_level='WARNING', default_scope='kiln.det', **val)
        if raises is None:
            runner.train()
        else:
            with pytest.raises(ValueError, match=raises):
                runner.train()
    runner.close()
    [log] = list((tmp_path / 'work').glob('*/*.log'))
    terminal = capfd.readouterr().err + ''.join(f'{w.message}\n' for w in escaped)
    return _Run(log=log.read_text(), terminal=terminal)


PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='Resize', scale=(64, 48), keep_ratio=False), dict(type='PackDetInputs')]


def _coco_cfg(ann: Path, **kwargs) -> dict:
    return dict(type='CocoDataset', ann_file=str(ann), data_prefix=dict(img=str(COCO128 / 'images/train2017') + '/'),
                **kwargs)


def _voc_cfg(root: Path) -> dict:
    return dict(type='VOCDataset', data_root=str(root), ann_file='ImageSets/Main/train.txt',
                data_prefix=dict(sub_data_root=''), metainfo=dict(classes=BCCD_CLASSES))


def test_coco_bad_boxes_and_wrong_sizes_reach_the_log_file_of_a_run(tmp_path, capfd):
    data, ann = _coco_subset(tmp_path)
    victims = [im['id'] for im in data['images'][:2]]
    broken = _break_boxes(data, victims)
    data['images'][3]['height'] += 7
    ann.write_text(json.dumps(data))
    run = _run(tmp_path, capfd, _coco_cfg(ann))
    dropped = run.once('annotation(s) with an unusable box')  # once on the terminal, once in the log file
    assert 'WARNING' in dropped and 'train data: ' in dropped
    assert f'dropped {len(broken)} annotation(s)' in dropped and '2 of 6 image(s) have no box left' in dropped
    assert f'annotation {broken[0]} of image {victims[0]}' in dropped
    sizes = run.once('do not match the image file')
    assert f'image {data["images"][3]["id"]} ' in sizes and 'width/height of 1 image(s)' in sizes


def test_voc_dropped_and_unknown_objects_reach_the_log_file_of_a_run(tmp_path, capfd):
    root = _voc_copy(tmp_path, ['BloodImage_00000', 'BloodImage_00003'], {'Platelets': 'platelet'})
    xml = root / 'Annotations/BloodImage_00000.xml'
    text = xml.read_text()
    start = text.index('<bndbox>')
    end = text.index('</bndbox>', start)
    xml.write_text(text[:start] + '<bndbox><xmin>700</xmin><ymin>10</ymin><xmax>720</xmax><ymax>30</ymax>'
                   + text[end:])  # object #0 lies right of the 640-pixel-wide image
    run = _run(tmp_path, capfd, _voc_cfg(root))
    dropped = run.once('with zero area after clipping')
    assert 'dropped 1 box(es)' in dropped and 'BloodImage_00000.xml object #0' in dropped
    unknown = run.once('whose <name> is not in classes')
    assert "'platelet' x1 (did you mean 'Platelets'?)" in unknown and 'BloodImage_00003.xml object #' in unknown


def test_warnings_before_a_later_build_error_reach_the_log_file_before_the_error(tmp_path, capfd):
    """The train data warns (bad boxes, a wrong size), then the val data cannot be built: the warnings are in the
    log file (once, before the error), not only on stderr."""
    data, ann = _coco_subset(tmp_path)
    broken = _break_boxes(data, [data['images'][0]['id']])
    data['images'][2]['width'] -= 5
    ann.write_text(json.dumps(data))
    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps(dict(data, images=[], annotations=[])))
    run = _run(tmp_path, capfd, _coco_cfg(ann), raises='lists no images',
               val_dataset=_coco_cfg(empty, test_mode=True))
    dropped = run.once('annotation(s) with an unusable box')
    assert f'dropped {len(broken)} annotation(s)' in dropped and f'annotation {broken[0]} of image' in dropped
    sizes = run.once('do not match the image file')
    assert f'image {data["images"][2]["id"]} ' in sizes
    [error] = [ln for ln in run.log.splitlines() if ' - ERROR - ' in ln]
    assert f'train failed: ValueError: {empty}: the file lists no images' in error
    lines = run.log.splitlines()
    assert lines.index(dropped) < lines.index(sizes) < lines.index(error)


def test_dataset_built_before_the_runner_its_warnings_reach_the_log_file_once(tmp_path, capfd):
    """A DataLoader given to the Runner already built: Python printed the dataset's warning when it was built;
    DataCheckHook writes it into the log file (not on the terminal again)."""
    from kiln.dataset import build_dataloader
    root = _voc_copy(tmp_path, ['BloodImage_00000', 'BloodImage_00003'], {'WBC': 'wbc'})
    with pytest.warns(UserWarning, match="'wbc' x2"):
        loader = build_dataloader(dict(dataset=dict(_voc_cfg(root), pipeline=PIPELINE), batch_size=2,
                                       sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
    run = _run(tmp_path, capfd, loader)
    assert "'wbc' x2" not in run.terminal  # printed once already, when the dataset was built
    line = [ln for ln in run.log.splitlines() if "'wbc' x2 (did you mean 'WBC'?)" in ln]
    assert len(line) == 1 and 'train data: VOCDataset' in line[0] and 'BloodImage_00000.xml object #' in line[0]


def test_num_classes_mismatch_stops_a_run_with_the_error_in_the_log_file(tmp_path, capfd):
    root = _voc_copy(tmp_path, ['BloodImage_00000'], {})
    run = _run(tmp_path, capfd, _voc_cfg(root), raises='does not fit the data', head_classes=80)
    [error] = [ln for ln in run.log.splitlines() if ' - ERROR - ' in ln]  # logged once (hook), not again
    assert 'model.bbox_head.num_classes=80 but the dataset has 3 classes' in error
    assert 'set bbox_head.num_classes=3' in error
    assert run.terminal.count('num_classes=80 but the dataset has 3') == 1


@pytest.mark.parametrize('case', ['coco_no_images', 'coco_every_box_bad', 'voc_no_known_name', 'empty_split'])
def test_errors_while_building_the_data_reach_the_log_file_of_a_run(tmp_path, capfd, case):
    if case.startswith('coco'):
        data, ann = _coco_subset(tmp_path, 1 if case == 'coco_no_images' else 3)
        if case == 'coco_no_images':
            data = dict(data, images=[], annotations=[])
            expected = f'{ann}: the file lists no images'
        else:
            broken = _break_boxes(data, [im['id'] for im in data['images']])
            expected = (f'{ann}: every one of the {len(broken)} annotation(s) of the selected classes has an '
                        f'unusable box, nothing is left to train on: annotation {broken[0]} of image')
        ann.write_text(json.dumps(data))
        dataset = _coco_cfg(ann)
    else:
        root = _voc_copy(tmp_path, ['BloodImage_00000'], {'WBC': 'wbc', 'RBC': 'rbc', 'Platelets': 'plt'})
        if case == 'empty_split':
            (root / 'ImageSets/Main/train.txt').write_text('')
        dataset = _voc_cfg(root)
        expected = ("train.txt: no object is left to train on" if case == 'voc_no_known_name' else
                    'train_dataloader has no data: the dataset VOCDataset has length 0')
    run = _run(tmp_path, capfd, dataset, raises=re.escape(expected.split(': ', 1)[1]))
    [line] = [ln for ln in run.log.splitlines() if ' - ERROR - ' in ln]
    assert 'train failed: ValueError: ' in line and expected in line
