"""Dataset base configs: switching dataset format by inheritance leaves no key of the other format behind."""
from __future__ import annotations

import inspect
from pathlib import Path

from kiln.config import Config
from kiln.det.datasets import CocoDataset
from kiln.det.datasets.checks import check_num_classes
from kiln.registry import DATASETS, init_default_scope

REPO = Path(__file__).resolve().parents[3]
COCO128 = REPO.parent / 'shared' / 'data' / 'coco128'
FCOS_BCCD = REPO / 'configs/fcos/fcos_r18-slim_fpn_bccd.py'
COCO_BASE = REPO / 'configs/_base_/datasets/coco_detection.py'
COCO_INSTANCE_BASE = REPO / 'configs/_base_/datasets/coco_instance.py'
VOC_ONLY = {'sub_data_root', 'img_subdir', 'ann_subdir'}


def _coco_keys() -> set[str]:
    keys = set()
    for cls in CocoDataset.__mro__:
        if '__init__' in vars(cls):
            keys |= set(inspect.signature(cls.__init__).parameters) - {'self', 'args', 'kwargs'}
    return keys | {'type'}


def test_bccd_config_switched_to_coco_detection_keeps_no_voc_key(tmp_path):
    child = tmp_path / 'fcos_coco128.py'
    child.write_text(f"_base_ = [{str(FCOS_BCCD)!r}, {str(COCO_BASE)!r}]\n"
                     f"data_root = {str(COCO128) + '/'!r}\n"
                     "train_dataloader = dict(dataset=dict(data_root=data_root,\n"
                     "    ann_file='annotations/instances_train2017.json', data_prefix=dict(img='images/train2017/')))\n"
                     "val_dataloader = dict(dataset=dict(data_root=data_root,\n"
                     "    ann_file='annotations/instances_val2017.json', data_prefix=dict(img='images/val2017/')))\n"
                     "test_dataloader = val_dataloader\n")
    cfg = Config.fromfile(str(child))
    allowed = _coco_keys()
    for stage in ('train', 'val', 'test'):
        ds = cfg[f'{stage}_dataloader']['dataset']
        assert ds['type'] == 'CocoDataset'
        assert set(ds) <= allowed, set(ds) - allowed
        assert not VOC_ONLY & set(ds['data_prefix']), ds['data_prefix']
        assert ds['metainfo'] is None  # BCCD's 3 classes are gone
    assert cfg.val_evaluator['type'] == 'CocoMetric' and 'eval_mode' not in cfg.val_evaluator
    init_default_scope('kiln.det')
    train = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    assert len(train.metainfo['classes']) == 80 and len(train) == 126  # 2 label-less images filtered
    # the model still says 3 classes: the check DataCheckHook runs before training names it
    [problem] = check_num_classes(cfg.model, train.metainfo['classes'])
    assert 'model.bbox_head.num_classes=3 but the dataset has 80 classes' in problem.message


def test_bccd_base_reads_its_folders_under_data_root(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = Config.fromfile(str(FCOS_BCCD))
    assert 'data_prefix' not in cfg.val_dataloader.dataset
    init_default_scope('kiln.det')
    val = DATASETS.build(dict(cfg.val_dataloader.dataset, pipeline=[]))
    assert len(val) == 87 and Path(val.get_data_info(0)['img_path']).is_file()
    assert val.get_data_info(0)['img_path'].startswith('data/bccd/JPEGImages/')


def test_coco_detection_base_is_mmdetection_layout():
    cfg = Config.fromfile(str(COCO_BASE))
    assert cfg.dataset_type == 'CocoDataset' and cfg.data_root == 'data/coco/'
    ds = cfg.train_dataloader.dataset
    assert ds.ann_file == 'annotations/instances_train2017.json' and ds.data_prefix == dict(img='train2017/')
    assert cfg.train_dataloader.batch_sampler == dict(type='AspectRatioBatchSampler')
    assert cfg.test_dataloader == cfg.val_dataloader and cfg.val_evaluator.metric == 'bbox'
    assert not any(step.get('with_mask') for step in cfg.train_pipeline)


def test_bccd_config_switched_to_coco_instance_drops_the_bccd_classes(tmp_path):
    child = tmp_path / 'fcos_coco_instance.py'
    child.write_text(f"_base_ = [{str(FCOS_BCCD)!r}, {str(COCO_INSTANCE_BASE)!r}]\n")
    cfg = Config.fromfile(str(child))
    allowed = _coco_keys()
    for stage in ('train', 'val', 'test'):
        ds = cfg[f'{stage}_dataloader']['dataset']
        assert ds['type'] == 'CocoDataset' and set(ds) <= allowed, set(ds) - allowed
        assert not VOC_ONLY & set(ds['data_prefix']) and ds['metainfo'] is None
        assert any(t.get('with_mask') for t in ds['pipeline'] if t['type'] == 'LoadAnnotations')
    assert cfg.train_dataloader.batch_sampler == dict(type='AspectRatioBatchSampler')
    assert list(cfg.val_evaluator['metric']) == ['bbox', 'segm'] and 'eval_mode' not in cfg.val_evaluator


def test_coco_config_switched_to_the_bccd_base_evaluates_on_bccd(tmp_path, monkeypatch):
    """The other direction: a COCO-layout config re-pointed at BCCD by listing the BCCD base later keeps no
    COCO json as the evaluator's ground truth (it would evaluate against another dataset)."""
    bccd_base = REPO / 'configs/_base_/datasets/bccd_detection.py'
    child = tmp_path / 'coco_to_bccd.py'
    child.write_text(f"_base_ = [{str(COCO_BASE)!r}, {str(bccd_base)!r}]\n")
    cfg = Config.fromfile(str(child))
    for key in ('val_evaluator', 'test_evaluator'):
        assert cfg[key]['type'] == 'CocoMetric' and cfg[key]['ann_file'] is None
    assert cfg.val_dataloader.dataset.type == 'VOCDataset'
    assert tuple(cfg.val_dataloader.dataset.metainfo['classes']) == ('RBC', 'WBC', 'Platelets')
    monkeypatch.chdir(REPO)
    init_default_scope('kiln.det')
    val = DATASETS.build(dict(cfg.val_dataloader.dataset, pipeline=[]))
    assert len(val) == 87 and Path(val.get_data_info(0)['img_path']).is_file()


def test_coco_and_voc0712_bases_switch_both_ways_without_leftovers(tmp_path):
    """Listing voc0712.py after a COCO base (or the reverse) gives exactly the later base's dataloaders and
    evaluators: between the files of one ``_base_`` list a dict of another ``type`` (RepeatDataset vs
    CocoDataset, VOCMetric vs CocoMetric) replaces the earlier dict instead of collecting its keys."""
    from kiln.registry import METRICS
    voc_base = REPO / 'configs/_base_/datasets/voc0712.py'
    keys = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')
    init_default_scope('kiln.det')
    for first, second in ((COCO_BASE, voc_base), (voc_base, COCO_BASE)):
        child = tmp_path / f'{first.stem}_then_{second.stem}.py'
        child.write_text(f"_base_ = [{str(first)!r}, {str(second)!r}]\n")
        merged, alone = Config.fromfile(str(child)), Config.fromfile(str(second))
        for key in keys:
            assert merged[key].to_dict() == alone[key].to_dict(), (first.stem, second.stem, key)
        metric = METRICS.build(dict(merged.val_evaluator, ann_file=None) if 'ann_file' in merged.val_evaluator
                               else merged.val_evaluator)
        assert type(metric).__name__ == merged.val_evaluator['type']
    merged = Config.fromfile(str(tmp_path / 'coco_detection_then_voc0712.py'))
    assert merged.train_dataloader.dataset.type == 'RepeatDataset'
    assert set(merged.train_dataloader.dataset) == {'type', 'times', 'dataset'}  # no ann_file / data_prefix.img
    assert 'ann_file' not in merged.val_evaluator and merged.val_evaluator.eval_mode == '11points'
