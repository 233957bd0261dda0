"""CocoDataset with ``backend_args`` (annotations and images read through fsspec), its ``filter_cfg`` on real
coco128 (images without annotations, ``min_size``), and a YOLO-layout dataset feeding one training step of the
model of a config (the config ``kiln train --data`` writes for coco128)."""
from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch

from kiln.det.datasets import CocoDataset

SHARED = Path(__file__).parents[3].parent / 'shared' / 'data'
BALLOON, COCO128 = SHARED / 'balloon', SHARED / 'coco128'
pytestmark = pytest.mark.skipif(not (BALLOON.is_dir() and COCO128.is_dir()), reason='shared data not beside the repo')


@pytest.fixture
def memory_balloon():
    """balloon val (first 3 images) copied into fsspec's in-memory file system under memory://kiln_balloon/."""
    fs = fsspec.filesystem('memory')
    data = json.loads((BALLOON / 'annotations/instances_val.json').read_text())
    data['images'] = data['images'][:3]
    ids = {im['id'] for im in data['images']}
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] in ids]
    fs.pipe('/kiln_balloon/annotations/val.json', json.dumps(data).encode())
    for im in data['images']:
        fs.pipe(f'/kiln_balloon/val/{im["file_name"]}', (BALLOON / 'val' / im['file_name']).read_bytes())
    yield data
    fs.rm('/kiln_balloon', recursive=True)


def test_backend_args_read_annotations_and_images_through_fsspec(memory_balloon, monkeypatch):
    opened = []
    real_open = fsspec.open

    def recording_open(path, mode='rb', **kwargs):
        opened.append((str(path), kwargs))
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(fsspec, 'open', recording_open)
    backend_args = dict(skip_instance_cache=True)  # a storage option every fsspec file system accepts
    pipeline = [dict(type='LoadImageFromFile', backend_args=backend_args),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]
    remote = CocoDataset(data_root='memory://kiln_balloon/', ann_file='annotations/val.json',
                         data_prefix=dict(img='val/'), metainfo=dict(classes=('balloon',)), test_mode=True,
                         backend_args=backend_args, pipeline=pipeline)
    local = CocoDataset(data_root=str(BALLOON), ann_file='annotations/instances_val.json',
                        data_prefix=dict(img='val/'), metainfo=dict(classes=('balloon',)), test_mode=True,
                        indices=3, pipeline=pipeline)
    assert len(remote) == len(local) == 3
    assert opened[0] == ('memory://kiln_balloon/annotations/val.json', backend_args)
    for i in range(3):
        a, b = remote[i], local[i]
        assert a['img_path'].startswith('memory://kiln_balloon/val/')
        np.testing.assert_array_equal(a['img'], b['img'])
        np.testing.assert_array_equal(a['gt_bboxes'], b['gt_bboxes'])
        np.testing.assert_array_equal(a['gt_masks'].masks, b['gt_masks'].masks)
    assert sum(p.startswith('memory://kiln_balloon/val/') and kw == backend_args for p, kw in opened) == 3


def test_coco_filter_cfg_on_coco128_images_without_annotations_and_min_size():
    kw = dict(data_root=str(COCO128), ann_file='annotations/instances_train2017.json',
              data_prefix=dict(img='images/train2017/'))
    raw = json.loads((COCO128 / 'annotations/instances_train2017.json').read_text())
    annotated = {a['image_id'] for a in raw['annotations']}
    assert len(raw['images']) == 128 and len(annotated) == 126  # two background images
    assert len(CocoDataset(**kw, test_mode=True)) == 128  # evaluation sees every image
    kept = CocoDataset(**kw, filter_cfg=dict(filter_empty_gt=True))
    assert len(kept) == 126 and all(kept.get_data_info(i)['instances'] for i in range(len(kept)))
    assert len(CocoDataset(**kw, filter_cfg=dict(filter_empty_gt=False))) == 128
    short = sorted(min(im['width'], im['height']) for im in raw['images'])
    min_size = short[10] + 1  # drops the 11 images with the shortest short side (and any tie)
    expect = sum(min(im['width'], im['height']) >= min_size for im in raw['images'])
    small = CocoDataset(**kw, filter_cfg=dict(min_size=min_size))
    assert len(small) == expect < 128
    assert all(min(small.get_data_info(i)['width'], small.get_data_info(i)['height']) >= min_size
               for i in range(len(small)))


def test_yolo_layout_config_feeds_a_training_step(tmp_path):
    """The YOLO dataset of the config `kiln train --data coco128` writes, through the pipeline and the model of
    that config: one loss / backward step with finite losses and gradients."""
    from kiln.dataset import pseudo_collate
    from kiln.det.apis.zero_config import build_zero_config
    from kiln.registry import DATASETS, MODELS, init_default_scope
    cfg, info = build_zero_config(str(COCO128), model='fcos', img_size=128, work_dir=str(tmp_path))
    assert info['format'] == 'yolo' and cfg.train_dataloader.dataset.type == 'YOLODataset'
    init_default_scope('kiln.det')
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, indices=2))
    batch = pseudo_collate([ds[0], ds[1]])
    labels = torch.cat([s.gt_instances.labels for s in batch['data_samples']])
    assert len(labels) > 0 and int(labels.max()) < 80
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def _roboflow_copy(tmp_path: Path) -> Path:
    """Six coco128 images in Roboflow's YOLO export layout: train/ and valid/ beside a data.yaml whose entries are
    ``../train/images`` (no ``path``), ``nc`` and a ``names`` list."""
    import yaml
    root = tmp_path / 'roboflow'
    stems = sorted(p.stem for p in (COCO128 / 'labels/train2017').glob('*.txt'))[:6]
    for k, stem in enumerate(stems):
        split = 'train' if k < 4 else 'valid'
        for sub, ext, src in (('images', 'jpg', 'images'), ('labels', 'txt', 'labels')):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
            (root / split / sub / f'{stem}.{ext}').symlink_to(COCO128 / src / 'train2017' / f'{stem}.{ext}')
    names = yaml.safe_load((COCO128 / 'data.yaml').read_text())['names']
    (root / 'data.yaml').write_text(yaml.safe_dump(dict(train='../train/images', val='../valid/images', nc=80,
                                                        names=[names[i] for i in range(80)])))
    return root


def test_roboflow_yolo_export_with_dotdot_entries_reads_like_ultralytics(tmp_path):
    from kiln.det.datasets import YOLODataset
    from kiln.det.datasets.checks import check_yolo
    from kiln.det.datasets.converters import yolo2coco
    from kiln.det.datasets.layout import detect_layout
    root = _roboflow_copy(tmp_path)
    train = YOLODataset(ann_file=str(root / 'data.yaml'), split='train', test_mode=True)
    val = YOLODataset(ann_file=str(root / 'data.yaml'), split='val', test_mode=True)
    assert (len(train), len(val)) == (4, 2)
    assert train.get_data_info(0)['img_path'] == str(root / 'train/images' / Path(train.get_data_info(0)['img_path']).name)
    ref = YOLODataset(data_root=str(COCO128), ann_file='data.yaml', split='train', test_mode=True)
    ref_by_name = {Path(ref.get_data_info(i)['img_path']).name: ref.get_data_info(i) for i in range(len(ref))}
    for ds in (train, val):
        for i in range(len(ds)):
            rec = ds.get_data_info(i)
            expect = ref_by_name[Path(rec['img_path']).name]
            assert [x['bbox_label'] for x in rec['instances']] == [x['bbox_label'] for x in expect['instances']]
            np.testing.assert_allclose([x['bbox'] for x in rec['instances']], [x['bbox'] for x in expect['instances']])
    assert not check_yolo(str(root / 'data.yaml'), 'train').errors
    layout = detect_layout(str(root))
    assert layout['format'] == 'yolo' and set(layout['splits']) == {'train', 'val'}
    summary = yolo2coco(str(root), str(tmp_path / 'coco'))
    assert summary['splits']['train']['images'] == 4


def test_real_yolo_segment_labels_give_the_masks_of_the_coco_seg_json(tmp_path):
    """coco128's ``labels_seg/`` (Ultralytics YOLO-seg polygons, class = COCO id) read by YOLODataset give the
    boxes and polygon masks of ``instances_seg_train2017.json`` (converted from the same files, rounded to
    pixels), also after LoadAnnotations(with_mask=True) rasterises them."""
    import yaml

    from kiln.det.datasets import YOLODataset
    from kiln.det.datasets.transforms import LoadAnnotations
    data = json.loads((COCO128 / 'annotations/instances_seg_train2017.json').read_text())
    cat_name = {c['id']: c['name'] for c in data['categories']}
    names = {i: cat_name.get(i, f'unused_{i}') for i in range(max(cat_name) + 1)}
    stems = sorted(p.stem for p in (COCO128 / 'labels_seg/train2017').glob('*.txt'))[:6]
    root = tmp_path / 'seg'
    for sub in ('images/train', 'labels/train'):
        (root / sub).mkdir(parents=True)
    for stem in stems:
        (root / 'images/train' / f'{stem}.jpg').symlink_to(COCO128 / 'images/train2017' / f'{stem}.jpg')
        (root / 'labels/train' / f'{stem}.txt').symlink_to(COCO128 / 'labels_seg/train2017' / f'{stem}.txt')
    (root / 'data.yaml').write_text(yaml.safe_dump(dict(path='.', train='images/train', val='images/train',
                                                        names=names)))
    classes = tuple(cat_name[c] for c in sorted(cat_name))
    yolo = YOLODataset(ann_file=str(root / 'data.yaml'), split='train', metainfo=dict(classes=classes),
                       test_mode=True)
    coco = CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_seg_train2017.json',
                       data_prefix=dict(img='images/train2017/'), metainfo=dict(classes=classes), test_mode=True)
    by_name = {Path(coco.get_data_info(i)['img_path']).name: coco.get_data_info(i) for i in range(len(coco))}
    load = LoadAnnotations(with_mask=True)
    checked = 0
    for i in range(len(yolo)):
        a = yolo.get_data_info(i)
        b = by_name[Path(a['img_path']).name]
        assert len(a['instances']) == len(b['instances']) > 0
        for x, y in zip(a['instances'], b['instances']):  # same order: the json was written line by line
            assert x['bbox_label'] == y['bbox_label']
            np.testing.assert_allclose(x['bbox'], y['bbox'], atol=1.0)
            assert len(x['mask']) == 1 and len(x['mask'][0]) == len(y['mask'][0])
            np.testing.assert_allclose(x['mask'][0], y['mask'][0], atol=1.0)
        ma = load(dict(a, ori_shape=(a['height'], a['width'])))['gt_masks'].to_ndarray().astype(bool)
        mb = load(dict(b, ori_shape=(b['height'], b['width'])))['gt_masks'].to_ndarray().astype(bool)
        inter, union = (ma & mb).sum((1, 2)), (ma | mb).sum((1, 2))
        big = union > 400
        assert (inter[big] / union[big]).min() > 0.9
        checked += int(big.sum())
    assert checked >= 10
