"""Config patterns of MMDetection 3.3.0's config corpus that kiln once read differently from
MMEngine 0.10.7 (found with tools/compare_mmdet_configs.py). Each file chain in data/mmdet_compat
reproduces one pattern; the expected dicts are what MMEngine 0.10.7 returns for these files
(checked with MMEngine installed; these tests do not need it)."""
from pathlib import Path

from kiln.config import Config

DATA = Path(__file__).parent / 'data' / 'mmdet_compat'


def load(name: str) -> dict:
    return Config.fromfile(DATA / name).to_dict()


PIPELINE = [
    {'type': 'LoadImageFromFile', 'backend_args': None},
    {'type': 'Resize', 'scale': (1333, 800), 'keep_ratio': True},
    {'type': 'PackDetInputs', 'meta_keys': ('img_id', 'img_path', 'scale_factor')},
]
DATALOADER = {'batch_size': 1,
              'dataset': {'type': 'CocoDataset', 'ann_file': 'val.json', 'pipeline': PIPELINE}}
# base_detector.py with its own base base_runtime.py
BASE = {
    'max_epochs': 12,
    'train_cfg': {'type': 'EpochBasedTrainLoop', 'max_epochs': 12, 'val_interval': 1},
    'default_hooks': {'checkpoint': {'type': 'CheckpointHook', 'interval': 1}},
    'optim_wrapper': {'type': 'OptimWrapper', 'optimizer': {'type': 'SGD', 'lr': 0.02}},
    'param_scheduler': [
        {'type': 'LinearLR', 'start_factor': 0.001, 'by_epoch': False, 'begin': 0, 'end': 500},
        {'type': 'MultiStepLR', 'by_epoch': True, 'begin': 0, 'end': 12, 'milestones': [8, 11]}],
    'backend_args': None,
    'model': {'type': 'YOLOX',
              'data_preprocessor': {'type': 'DetDataPreprocessor', 'pad_size_divisor': 32},
              'bbox_head': {'type': 'YOLOXHead', 'num_classes': 80},
              'test_cfg': {'score_thr': 0.01, 'nms': {'type': 'nms', 'iou_threshold': 0.65}}},
    'tta_model': {'type': 'DetTTAModel'},
    'test_pipeline': PIPELINE,
    'val_dataloader': DATALOADER,
    'test_dataloader': DATALOADER,
}


def fresh(value):
    """A copy sharing no container (deepcopy would keep BASE's shared PIPELINE shared)."""
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fresh(v) for v in value)
    return value


def expected(**changes) -> dict:
    result = fresh(BASE)
    result.update(fresh(changes))
    return result


def test_base_chain_itself():
    assert load('base_detector.py') == BASE


def test_take_inherited_model_apart_and_delete_inherited_keys():
    # bytetrack/, ocsort/, sort/, qdtrack/, masktrack_rcnn/ ... raised
    # "AttributeError: '_BaseVars' object has no attribute 'model'" (`del _base_.model`)
    detector = {'type': 'YOLOX',
                'bbox_head': {'type': 'YOLOXHead', 'num_classes': 1},
                'test_cfg': {'score_thr': 0.01, 'nms': {'type': 'nms', 'iou_threshold': 0.7}}}
    want = expected()
    del want['model'], want['tta_model']
    want['detector'] = detector
    want['model'] = {'type': 'ByteTrack', 'detector': detector, 'tracker': {'type': 'ByteTracker'}}
    got = load('tracker_from_base.py')
    assert got == want
    assert list(got) == list(want)  # deleted inherited keys are gone, new keys come last


def test_assign_inherited_values_through_base():
    # *-wandb_coco.py (val_interval, checkpoint interval), *_amp-1x_coco.py (AmpOptimWrapper),
    # *_ms-2x/3x (milestones), faster-rcnn *_ms-1x (pipeline), cascade-rpn (proposal_file), glip
    # odinw (meta_keys): the assignments were made on a copy and lost
    want = expected(
        train_cfg={'type': 'EpochBasedTrainLoop', 'max_epochs': 12, 'val_interval': 2},
        default_hooks={'checkpoint': {'type': 'CheckpointHook', 'interval': 4}},
        optim_wrapper={'type': 'AmpOptimWrapper', 'optimizer': {'type': 'SGD', 'lr': 0.02}})
    want['param_scheduler'][1]['milestones'] = [16, 22]
    # val_dataloader and test_dataloader were one dict in the base: only the one assigned changes
    want['val_dataloader']['dataset']['ann_file'] = 'proposals_val.json'
    # test_pipeline was also the pipeline list of both dataloaders: they keep theirs
    want['test_pipeline'][-1]['meta_keys'] = ('img_id', 'img_path', 'scale_factor', 'text')
    assert load('assign_through_base.py') == want


def test_merge_builds_new_dicts_and_unconsumed_delete_is_kept():
    want = expected(
        optim_wrapper={'type': 'OptimWrapper', 'optimizer': {'type': 'AdamW', 'lr': 0.0001}},
        original_head={'type': 'YOLOXHead', 'num_classes': 80},   # held before the merge
        optimizer_config={'_delete_': True, 'grad_clip': None})  # nothing to replace: kept
    want['model']['bbox_head']['num_classes'] = 3
    assert load('merge_copies.py') == want


def test_pure_python_config_keeps_functions_it_defines():
    # glip/odinw/override_category.py: a script that imports mmengine reads in the lazy-import
    # style, where MMEngine keeps the functions the file defines (imported names are dropped)
    cfg = load('lazy_defines_function.py')
    assert list(cfg) == ['parse_args', 'categories']
    assert callable(cfg['parse_args']) and cfg['parse_args'].__name__ == 'parse_args'
    assert cfg['categories'] == [{'id': 1, 'name': 'rbc'}]


def test_base_reference_in_python_is_still_a_copy(tmp_path):
    # {{_base_.x}} in a .py file stays a deep copy (documented kiln extension)
    (tmp_path / 'a.py').write_text("model = dict(depth=50)\n")
    (tmp_path / 'b.py').write_text("_base_ = 'a.py'\nm = {{_base_.model}}\nm['depth'] = 101\n")
    cfg = Config.fromfile(tmp_path / 'b.py')
    assert cfg.m == {'depth': 101} and cfg.model == {'depth': 50}


def test_missing_base_attribute_names_file_and_key(tmp_path):
    (tmp_path / 'a.py').write_text("model = dict(depth=50)\n")
    (tmp_path / 'b.py').write_text("_base_ = 'a.py'\ndel _base_.model\nx = _base_.model\n")
    try:
        Config.fromfile(tmp_path / 'b.py')
    except AttributeError as e:
        assert 'b.py' in str(e) and '_base_.model is not defined' in str(e)
    else:
        raise AssertionError('reading a deleted inherited key must fail')


def test_no_frame_inspection_in_loader_and_registry():
    # issue 10: the loader finds the `_base_ =` line from the source text, the registry its scope
    # from locations / registered objects (both behaviours are tested in test_loader / test_registry)
    kiln_dir = Path(__file__).parents[2] / 'kiln'
    for rel in ('config/loader.py', 'registry/registry.py'):
        text = (kiln_dir / rel).read_text()
        assert '_getframe' not in text and 'currentframe' not in text and 'inspect.stack' not in text


def test_base_line_is_named_without_frames(tmp_path):
    (tmp_path / 'c.py').write_text("x = 1\n\n# bases\n_base_ = ['nope.py']\n")
    try:
        Config.fromfile(tmp_path / 'c.py')
    except FileNotFoundError as e:
        assert 'c.py, line 4: base config' in str(e)
    else:
        raise AssertionError('a missing base must fail')
