"""Bad samples (issue 11): ``on_bad_sample='error'|'warn'`` of the detection datasets, and warnings raised while
loading (in dataloader workers too) reaching the run's log file. Real BCCD / coco128 files, corrupted copies in
tmp_path."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from kiln.dataset import BadSampleWarning, build_dataloader
from kiln.det.datasets import CocoDataset, VOCDataset, YOLODataset
from kiln.model import BaseModel
from kiln.runner import Runner

SHARED = Path(__file__).parents[3].parent / 'shared' / 'data'
BCCD = SHARED / 'bccd'
COCO128 = SHARED / 'coco128'
CLASSES = ('RBC', 'WBC', 'Platelets')
IDS = ['BloodImage_00000', 'BloodImage_00001', 'BloodImage_00002', 'BloodImage_00003']
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(64, 48), keep_ratio=False), dict(type='PackDetInputs')]


def _voc_copy(tmp_path: Path, ids: list[str] = IDS) -> Path:
    root = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True)
    for i in ids:
        shutil.copy(BCCD / 'Annotations' / f'{i}.xml', root / 'Annotations' / f'{i}.xml')
        shutil.copy(BCCD / 'JPEGImages' / f'{i}.jpg', root / 'JPEGImages' / f'{i}.jpg')
    (root / 'ImageSets/Main/train.txt').write_text('\n'.join(ids) + '\n')
    return root


def _voc_cfg(root: Path, **kwargs) -> dict:
    return dict(type='VOCDataset', data_root=str(root), ann_file='ImageSets/Main/train.txt',
                data_prefix=dict(sub_data_root=''), metainfo=dict(classes=CLASSES), **kwargs)


def _voc(root: Path, **kwargs) -> VOCDataset:
    cfg = _voc_cfg(root, **kwargs)
    cfg.pop('type')
    return VOCDataset(**cfg)


def _truncate(path: Path, n: int = 20) -> None:
    path.write_bytes(path.read_bytes()[:-n])


def _garble(path: Path) -> None:
    path.write_bytes(b'this is not an image' * 10)


class _MeanNet(BaseModel):
    """Regresses the mean pixel of the batch: just enough of a model to train on PackDetInputs batches."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        x = torch.stack([i.float().mean() / 255 for i in inputs])
        if mode == 'loss':
            return dict(loss=((x - self.w) ** 2).mean())
        return x


def _train(tmp_path: Path, dataset: dict, num_workers: int = 1, max_epochs: int = 1, batch_size: int = 2) -> str:
    """Train ``_MeanNet`` on ``dataset`` for ``max_epochs``; returns the run's log file text."""
    runner = Runner(model=_MeanNet(), work_dir=str(tmp_path / 'work'),
                    train_dataloader=dict(dataset=dataset, batch_size=batch_size,
                                          num_workers=num_workers,
                                          sampler=dict(type='DefaultSampler', shuffle=True)),
                    train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                    default_hooks=dict(checkpoint=None), randomness=dict(seed=0), log_level='WARNING')
    runner.train()
    [log] = list((tmp_path / 'work').glob('*/*.log'))
    return log.read_text()


def test_truncated_jpeg_warning_from_a_worker_reaches_the_log_file(tmp_path):
    root = _voc_copy(tmp_path)
    _truncate(root / 'JPEGImages/BloodImage_00001.jpg')
    text = _train(tmp_path, _voc_cfg(root, pipeline=PIPELINE), num_workers=1)
    lines = [ln for ln in text.splitlines() if 'is a truncated JPEG' in ln]
    assert len(lines) == 1 and 'BloodImage_00001.jpg' in lines[0] and 'WARNING' in lines[0]
    assert 'data loading: LoadImageFromFile:' in lines[0]
    # the end-of-epoch summary gives the counts
    assert 'VOCDataset: this pass over the data raised 1 data warning(s); 0 bad sample(s) were skipped' in text


def test_a_repeated_warning_is_logged_once_per_pass_and_counted(tmp_path):
    root = _voc_copy(tmp_path)
    _truncate(root / 'JPEGImages/BloodImage_00001.jpg')
    # batch_size=1: Python's 'default' warning filter shows a warning once per batch (per catch_warnings)
    text = _train(tmp_path, dict(type='RepeatDataset', times=3, dataset=_voc_cfg(root, pipeline=PIPELINE)),
                  num_workers=1, batch_size=1)
    assert text.count('BloodImage_00001.jpg\' is a truncated JPEG') == 1
    assert ('RepeatDataset: this pass over the data raised 3 data warning(s) (1 distinct, each logged once); '
            '0 bad sample(s)') in text


def test_unreadable_image_is_skipped_in_a_run_with_the_count_in_the_log(tmp_path):
    root = _voc_copy(tmp_path)
    _garble(root / 'JPEGImages/BloodImage_00002.jpg')
    text = _train(tmp_path, _voc_cfg(root, on_bad_sample='warn', pipeline=PIPELINE), num_workers=1, max_epochs=2)
    skipped = [ln for ln in text.splitlines() if 'skipped sample 2 (' in ln]
    assert len(skipped) == 2  # once per epoch
    assert all('BloodImage_00002.jpg' in ln and 'cannot decode image' in ln for ln in skipped)
    assert text.count('1 bad sample(s) were skipped and replaced by other samples') == 2


def test_unreadable_image_is_an_error_naming_index_and_file_by_default(tmp_path):
    root = _voc_copy(tmp_path)
    _garble(root / 'JPEGImages/BloodImage_00002.jpg')
    ds = _voc(root, pipeline=PIPELINE)
    with pytest.raises(OSError, match='BloodImage_00002.jpg') as info:
        ds[2]
    assert any('while loading sample 2' in n and "on_bad_sample='warn'" in n for n in info.value.__notes__)
    ds = _voc(root, pipeline=PIPELINE, on_bad_sample='warn', test_mode=True)
    with pytest.raises(OSError):  # evaluation never replaces an image
        ds[2]


def _epoch_samples(dataset, seed: int, num_workers: int) -> tuple[list, list]:
    """(image file names of one epoch's samples, BadSampleWarning messages) without a Runner."""
    loader = build_dataloader(dict(dataset=dataset, sampler=dict(type='DefaultSampler', shuffle=True),
                                   batch_size=2, num_workers=num_workers), seed=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = [Path(s.metainfo['img_path']).name for batch in loader for s in batch['data_samples']]
    return got, [str(w.message) for w in caught if issubclass(w.category, BadSampleWarning)]


def test_replacement_is_deterministic_and_independent_of_workers(tmp_path):
    root = _voc_copy(tmp_path)
    _garble(root / 'JPEGImages/BloodImage_00003.jpg')
    ds = _voc(root, pipeline=PIPELINE, on_bad_sample='warn')
    a, warned_a = _epoch_samples(ds, seed=5, num_workers=0)
    b, warned_b = _epoch_samples(ds, seed=5, num_workers=1)
    assert a == b and warned_a == warned_b  # the replacement is a function of (seed, epoch, index)
    assert len(a) == 4 and 'BloodImage_00003.jpg' not in a
    [msg] = warned_a  # re-issued in the main process without a Runner
    assert 'skipped sample 3 (' in msg and 'BloodImage_00003.jpg' in msg and 'loading sample' in msg


def test_voc_bad_objects_and_missing_files_skipped_with_one_summary(tmp_path):
    root = _voc_copy(tmp_path)
    xml = root / 'Annotations/BloodImage_00000.xml'
    text = xml.read_text()
    first = text.index('<xmin>')
    xmin_end = text.index('</xmin>', first)
    text = text[:first] + '<xmin>9999' + text[xmin_end:]  # object #0: xmax < xmin
    xml.write_text(text)
    (root / 'Annotations/BloodImage_00001.xml').unlink()
    (root / 'JPEGImages/BloodImage_00002.jpg').unlink()
    with pytest.raises(ValueError, match=r"BloodImage_00000.xml: object #0 \(WBC\) has xmax < xmin.*"
                                         r"on_bad_sample='warn'"):
        _voc(root)
    n_objects = len(_voc(_voc_copy(tmp_path / 'clean'), test_mode=True).get_data_info(0)['instances'])
    with pytest.warns(UserWarning, match="on_bad_sample='warn' skipped 3 bad") as rec:
        ds = _voc(root, on_bad_sample='warn')
    msg = next(str(w.message) for w in rec if 'skipped 3' in str(w.message))
    assert 'BloodImage_00000.xml: object #0 (WBC)' in msg
    assert "image id 'BloodImage_00001' has no annotation file" in msg
    assert 'BloodImage_00002.jpg does not exist' in msg
    assert msg in ds.data_warnings  # DataCheckHook copies these into the log file
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['BloodImage_00000', 'BloodImage_00003']
    assert len(ds.get_data_info(0)['instances']) == n_objects - 1


def test_coco_bad_annotations_error_or_skip(tmp_path):
    data = json.loads((COCO128 / 'annotations/instances_train2017.json').read_text())
    images = data['images'][:4]
    ids = {im['id'] for im in images}
    anns = [a for a in data['annotations'] if a['image_id'] in ids]
    anns[0]['bbox'] = 'oops'
    anns[1]['category_id'] = 999
    del images[2]['width']
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(dict(images=images, annotations=anns, categories=data['categories'])))
    kw = dict(ann_file=str(ann), data_prefix=dict(img=str(COCO128 / 'images/train2017') + '/'))
    with pytest.raises(ValueError, match=rf'annotation {anns[0]["id"]} of image {anns[0]["image_id"]} has no '
                                         r'valid "bbox"'):
        CocoDataset(**kw)
    with pytest.warns(UserWarning, match="skipped 3 bad object") as rec:
        ds = CocoDataset(on_bad_sample='warn', **kw)
    msg = next(str(w.message) for w in rec if 'skipped 3' in str(w.message))
    assert 'category_id 999, which is not in "categories"' in msg
    assert f'image {images[2]["id"]} has no \'width\'' in msg
    assert len(ds) == 3 and images[2]['id'] not in [ds.get_data_info(i)['img_id'] for i in range(3)]


def test_yolo_bad_label_lines_error_or_skip(tmp_path):
    root = tmp_path / 'yolo'
    (root / 'images/train').mkdir(parents=True)
    (root / 'labels/train').mkdir(parents=True)
    stems = sorted(p.stem for p in (COCO128 / 'images/train2017').glob('*.jpg'))[:3]
    for s in stems:
        shutil.copy(COCO128 / 'images/train2017' / f'{s}.jpg', root / 'images/train' / f'{s}.jpg')
    (root / 'labels/train' / f'{stems[0]}.txt').write_text('0 0.5 0.5 0.2 0.2\n80 0.5 0.5 0.1 0.1\n')
    (root / 'labels/train' / f'{stems[1]}.txt').write_text('1 0.5 0.5 0.2\n')
    _garble(root / 'images/train' / f'{stems[2]}.jpg')
    names = [f'c{i}' for i in range(80)]
    (root / 'data.yaml').write_text(json.dumps(dict(path='.', train='images/train', names=names)))
    with pytest.raises(ValueError, match=rf'{stems[0]}.txt:2: class id 80 is out of range'):
        YOLODataset(ann_file=str(root / 'data.yaml'))
    with pytest.warns(UserWarning, match='skipped 3 bad') as rec:
        ds = YOLODataset(ann_file=str(root / 'data.yaml'), on_bad_sample='warn')
    msg = next(str(w.message) for w in rec if 'skipped 3' in str(w.message))
    assert f'{stems[1]}.txt:1: 3 coordinates' in msg and f'{stems[2]}.jpg' in msg and 'cannot be read' in msg
    assert len(ds) == 2 and len(ds.get_data_info(0)['instances']) == 1


def test_on_bad_sample_is_validated(tmp_path):
    with pytest.raises(ValueError, match="on_bad_sample must be 'error' or 'warn', got 'skip'"):
        _voc(_voc_copy(tmp_path), on_bad_sample='skip')


def test_replacement_survives_an_exact_resume(tmp_path):
    root = _voc_copy(tmp_path)
    _garble(root / 'JPEGImages/BloodImage_00000.jpg')
    flip = [*PIPELINE[:3], dict(type='RandomFlip', prob=0.5), PIPELINE[3]]
    ds = _voc(root, pipeline=flip, on_bad_sample='warn')

    def epoch(position: int) -> list:
        loader = build_dataloader(dict(dataset=ds, sampler=dict(type='DefaultSampler', shuffle=True),
                                       batch_size=1, num_workers=1), seed=11)
        loader.sampler.set_epoch(3)
        loader.sampler.load_state_dict(dict(epoch=3, seed=11, shuffle=True, position=position))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return [(Path(s.metainfo['img_path']).name, round(s.gt_instances.bboxes.sum().item(), 3),
                     float(b['inputs'][0].float().mean())) for b in loader for s in b['data_samples']]

    full = epoch(0)
    assert len(full) == 4 and 'BloodImage_00000.jpg' not in [name for name, *_ in full]
    for position in (1, 2, 3):
        assert epoch(position) == full[position:]  # the replaced sample, too, is the same after a resume
