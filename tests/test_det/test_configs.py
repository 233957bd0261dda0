"""The two-stage configs: MMDetection-layout base files, the VOC 07+12 config and the CPU recipes load, hold the
expected values and build."""
import os
from pathlib import Path

import pytest
import torch

from kiln.config import Config
from kiln.dataset import pseudo_collate
from kiln.registry import DATASETS, METRICS, MODELS, PARAM_SCHEDULERS, init_default_scope

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
BCCD = REPO / 'data' / 'bccd'
BALLOON = REPO.parent / 'shared' / 'data' / 'balloon'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('kiln.det')


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name, mmdet_params', [
    ('faster-rcnn_r50_fpn.py', 41_753_056),  # MMDetection 3.3.0, num_classes=80 (shared/mmdet_refs/README.md)
    ('mask-rcnn_r50_fpn.py', 44_396_336),
])
def test_rcnn_base_models_match_mmdetection_size(name, mmdet_params):
    cfg = Config.fromfile(str(CONFIGS / '_base_' / 'models' / name))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == cfg.model.type
    assert _num_params(model) == mmdet_params
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    assert cfg.model.train_cfg.rcnn.sampler.num == 512 and cfg.model.test_cfg.rcnn.max_per_img == 100
    if name.startswith('mask'):
        assert cfg.model.data_preprocessor.pad_mask is True
        assert cfg.model.train_cfg.rcnn.mask_size == 28 and cfg.model.test_cfg.rcnn.mask_thr_binary == 0.5


def test_voc0712_config_values():
    cfg = Config.fromfile(str(CONFIGS / 'faster_rcnn' / 'faster-rcnn_r50_fpn_1x_voc0712.py'))
    assert cfg.default_scope == 'kiln.det'
    assert cfg.model.type == 'FasterRCNN' and cfg.model.roi_head.bbox_head.num_classes == 20
    assert cfg.model.rpn_head.anchor_generator.strides == [4, 8, 16, 32, 64]
    train = cfg.train_dataloader.dataset
    assert train.type == 'RepeatDataset' and train.times == 3
    assert cfg.train_dataloader.batch_sampler == dict(type='AspectRatioBatchSampler')  # as MMDetection's file
    concat = train.dataset
    assert concat.type == 'ConcatDataset' and concat.ignore_keys == ['dataset_type']
    assert [d.type for d in concat.datasets] == ['VOCDataset', 'VOCDataset']
    assert [d.ann_file for d in concat.datasets] == ['VOC2007/ImageSets/Main/trainval.txt',
                                                     'VOC2012/ImageSets/Main/trainval.txt']
    assert [d.data_prefix.sub_data_root for d in concat.datasets] == ['VOC2007/', 'VOC2012/']
    assert all(d.data_root == 'data/VOCdevkit/' for d in concat.datasets)
    assert [t['type'] for t in concat.datasets[0].pipeline] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'PackDetInputs']
    assert concat.datasets[0].pipeline[2]['scale'] == (1000, 600)
    test = cfg.test_dataloader.dataset
    assert test.type == 'VOCDataset' and test.ann_file == 'VOC2007/ImageSets/Main/test.txt' and test.test_mode
    assert [t['type'] for t in test.pipeline][1:3] == ['Resize', 'LoadAnnotations']  # gt stays in original pixels
    assert cfg.train_cfg.max_epochs == 4 and cfg.param_scheduler[0].milestones == [3]
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.test_evaluator == dict(type='VOCMetric', metric='mAP', eval_mode='11points')
    assert type(METRICS.build(cfg.test_evaluator)).__name__ == 'VOCMetric'


def test_voc0712_train_set_builds_on_a_voc_layout(tmp_path):
    """The RepeatDataset(ConcatDataset([VOC2007, VOC2012])) of the config, on a VOCdevkit made of BCCD links."""
    root = tmp_path / 'VOCdevkit'
    for year in ('VOC2007', 'VOC2012'):
        (root / year).mkdir(parents=True)
        for sub in ('Annotations', 'JPEGImages', 'ImageSets'):
            os.symlink(BCCD / sub, root / year / sub)
    cfg = Config.fromfile(str(CONFIGS / 'faster_rcnn' / 'faster-rcnn_r50_fpn_1x_voc0712.py'))
    for d in cfg.train_dataloader.dataset.dataset.datasets:
        d.data_root = str(root) + '/'
        d.metainfo = dict(classes=('RBC', 'WBC', 'Platelets'))
    with pytest.warns(UserWarning, match='zero area'):  # a known degenerate BCCD box
        ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert type(ds).__name__ == 'RepeatDataset' and type(ds.dataset).__name__ == 'ConcatDataset'
    one_year = len(ds.dataset.datasets[0])
    assert 280 <= one_year <= 292 and len(ds.dataset) == 2 * one_year and len(ds) == 3 * 2 * one_year
    # the config's AspectRatioBatchSampler reads the sizes through both wrappers and covers the epoch
    from kiln.dataset import DefaultSampler
    from kiln.registry import DATA_SAMPLERS
    batches = list(DATA_SAMPLERS.build(cfg.train_dataloader.batch_sampler, default_args=dict(
        sampler=DefaultSampler(ds, shuffle=True, seed=0), batch_size=cfg.train_dataloader.batch_size)))
    assert sorted(int(i) for b in batches for i in b) == list(range(len(ds)))
    sample = ds[len(ds) - 1]  # the last VOC2012 image of the third repetition
    assert '/VOC2012/JPEGImages/' in sample['data_samples'].img_path
    assert max(sample['inputs'].shape[1:]) <= 1000 and min(sample['inputs'].shape[1:]) <= 600


def test_coco_instance_dataset_config():
    cfg = Config.fromfile(str(CONFIGS / '_base_' / 'datasets' / 'coco_instance.py'))
    assert cfg.train_dataloader.dataset.pipeline[1] == dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.val_evaluator.ann_file == 'data/coco/annotations/instances_val2017.json'
    assert cfg.train_dataloader.batch_sampler == dict(type='AspectRatioBatchSampler')  # as MMDetection's file
    # metainfo=None: switching a config to this base drops the classes of the previous dataset base
    assert cfg.train_dataloader.dataset.metainfo is None and cfg.val_dataloader.dataset.metainfo is None


def test_faster_rcnn_bccd_recipe_builds_and_trains_one_step():
    cfg = Config.fromfile(str(CONFIGS / 'faster_rcnn' / 'faster-rcnn_r18-slim_fpn_bccd.py'))
    assert cfg.model.type == 'FasterRCNN' and cfg.model.roi_head.bbox_head.num_classes == 3
    assert cfg.model.backbone.init_cfg is None  # from scratch: nothing to download
    assert cfg.train_cfg.max_epochs == 8 and cfg.val_evaluator.type == 'CocoMetric'
    model = MODELS.build(cfg.model)
    assert 2e6 < _num_params(model) < 6e6
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(BCCD) + '/'
    ds_cfg.indices = 2
    ds = DATASETS.build(ds_cfg)
    batch = pseudo_collate([ds[0], ds[1]])
    assert tuple(batch['inputs'][0].shape[1:]) == (384, 512)
    torch.manual_seed(0)
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= set(losses)
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)


@pytest.mark.skipif(not BALLOON.exists(), reason='shared balloon data not beside the repo')
def test_mask_rcnn_balloon_recipe_builds_and_loads_masks():
    cfg = Config.fromfile(str(CONFIGS / 'mask_rcnn' / 'mask-rcnn_r18-slim_fpn_balloon.py'))
    assert cfg.model.type == 'MaskRCNN' and cfg.model.roi_head.mask_head.num_classes == 1
    assert cfg.model.data_preprocessor.pad_mask is True and cfg.model.backbone.init_cfg is None
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.train_dataloader.dataset.data_root == '../shared/data/balloon/'  # beside the repository
    model = MODELS.build(cfg.model)
    assert 2e6 < _num_params(model) < 6e6
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(BALLOON) + '/'
    ds_cfg.indices = [0]
    ds = DATASETS.build(ds_cfg)
    assert ds.metainfo['classes'] == ('balloon',)
    sample = ds[0]
    h, w = sample['inputs'].shape[1:]
    assert max(h, w) == 512
    masks = sample['data_samples'].gt_instances.masks
    assert len(masks) == len(sample['data_samples'].gt_instances.bboxes) > 0
    assert (masks.height, masks.width) == (h, w)


def test_atss_bccd_recipe_builds_trains_and_predicts_on_bccd():
    cfg = Config.fromfile(str(CONFIGS / 'atss' / 'atss_r18-slim_fpn_bccd.py'))
    demo = Config.fromfile(str(CONFIGS / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'))
    assert cfg.model.type == 'ATSS' and cfg.model.bbox_head.type == 'ATSSHead'
    assert cfg.model.train_cfg.assigner == dict(type='ATSSAssigner', topk=9) and '_delete_' not in cfg.model.train_cfg
    # only the head differs from the demo: same backbone, neck, data and schedule
    for key in ('backbone', 'neck', 'data_preprocessor'):
        assert cfg.model[key].to_dict() == demo.model[key].to_dict(), key
    assert cfg.train_dataloader.to_dict() == demo.train_dataloader.to_dict()
    assert cfg.param_scheduler == demo.param_scheduler and cfg.train_cfg == demo.train_cfg
    model = MODELS.build(cfg.model)
    model.init_weights()
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(BCCD) + '/'
    ds_cfg.indices = 2
    ds = DATASETS.build(ds_cfg)
    batch = pseudo_collate([ds[0], ds[1]])
    torch.manual_seed(0)
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.bbox_head.atss_reg.weight.grad.abs().sum() > 0  # positives were assigned on real boxes
    model.eval()
    with torch.no_grad():
        pred = model(**model.data_preprocessor(batch, False), mode="predict")[0]
    inst = pred.pred_instances
    assert inst.bboxes.shape[1] == 4 and inst.scores_per_class.shape == (len(inst), 3)


def test_atss_13e_demo_recipe_is_the_atss_recipe_with_a_longer_schedule_and_the_demo_config():
    """`make demo` trains configs/atss/atss_r18-slim_fpn_13e_bccd.py: the 8-epoch ATSS recipe for 13 epochs, the
    warm-up kept (100 iterations) and the x0.1 drop in the last epoch only; no EMA hook."""
    cfg = Config.fromfile(str(CONFIGS / 'atss' / 'atss_r18-slim_fpn_13e_bccd.py'))
    short = Config.fromfile(str(CONFIGS / 'atss' / 'atss_r18-slim_fpn_bccd.py'))
    assert cfg.model.to_dict() == short.model.to_dict()
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'optim_wrapper', 'randomness'):
        assert cfg[key].to_dict() == short[key].to_dict(), key
    assert cfg.train_cfg.max_epochs == 13 and cfg.train_cfg.val_interval == 13
    assert not cfg.get('custom_hooks')
    makefile = (REPO / 'Makefile').read_text()
    assert 'DEMO_CONFIG ?= configs/atss/atss_r18-slim_fpn_13e_bccd.py' in makefile.splitlines()
    # the learning rate the runner sets: iteration-based warm-up, epoch-based step (52 iterations per epoch:
    # 205 training images, batch 4)
    model = torch.nn.Linear(1, 1)
    optim = torch.optim.SGD(model.parameters(), lr=cfg.optim_wrapper.optimizer.lr, momentum=0.9)
    scheds = [PARAM_SCHEDULERS.build(dict(s.to_dict(), optimizer=optim)) for s in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        for _ in range(52):
            lrs.append(optim.param_groups[0]['lr'])
            optim.step()
            for s in scheds:
                if not s.by_epoch:
                    s.step()
        for s in scheds:
            if s.by_epoch:
                s.step()
    assert len(lrs) == 676
    assert lrs[0] == pytest.approx(1e-4) and lrs[100] == pytest.approx(0.01)
    assert lrs[12 * 52 - 1] == pytest.approx(0.01) and lrs[12 * 52] == pytest.approx(0.001)
    assert lrs[-1] == pytest.approx(0.001)
    MODELS.build(cfg.model)


def test_atss_r50_base_model_is_mmdetections_atss():
    # the model dict of MMDetection 3.3.0's atss/atss_r50_fpn_1x_coco.py: the same sizes as its FCOS R50 GN head
    # (one anchor per location: 80 class + 4 box + 1 centerness outputs, GN towers, one Scale per level) on a
    # ResNet-50 of the same size, hence the FCOS reference's parameter count (shared/mmdet_refs/README.md)
    cfg = Config.fromfile(str(CONFIGS / '_base_' / 'models' / 'atss_r50_fpn.py'))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'ATSS' and _num_params(model) == 32_295_322
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    keys = model.state_dict()
    assert tuple(keys['bbox_head.atss_cls.weight'].shape) == (80, 256, 3, 3)
    assert tuple(keys['bbox_head.atss_reg.weight'].shape) == (4, 256, 3, 3)
    assert tuple(keys['bbox_head.atss_centerness.weight'].shape) == (1, 256, 3, 3)
    assert len(model.bbox_head.scales) == 5 and cfg.model.test_cfg.nms.iou_threshold == 0.6
    model.eval()
    with torch.no_grad():  # P3-P7 of a 256x320 input, one anchor per location
        cls_scores, bbox_preds, centernesses = model._forward(torch.zeros(1, 3, 256, 320))
    assert [tuple(c.shape[-2:]) for c in cls_scores] == [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    assert cls_scores[0].shape[1] == 80 and bbox_preds[0].shape[1] == 4 and centernesses[0].shape[1] == 1
