"""Faster R-CNN (TwoStageDetector) end to end on real BCCD images: a few training iterations through the data
pipeline, data preprocessor and OptimWrapper, then predict / tensor modes and the proposal-free path."""
import copy
from pathlib import Path

import pytest
import torch

import kiln.det  # noqa: F401  (registers datasets, transforms and models)
from kiln.dataset import pseudo_collate
from kiln.optim import OptimWrapper
from kiln.registry import DATASETS, MODELS

BCCD = Path(__file__).resolve().parents[4] / 'data' / 'bccd'

# MMDetection's faster-rcnn_r50_fpn_1x_coco model, shrunk like the shared reference (ResNet-18, 64 channels,
# 3 classes) and with fewer sampled RoIs/proposals to stay fast on CPU
MODEL = dict(
    type='FasterRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch'),
    neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, num_outs=5),
    rpn_head=dict(type='RPNHead', in_channels=64, feat_channels=64,
                  anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                        strides=[4, 8, 16, 32, 64]),
                  bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                  target_stds=[1.0, 1.0, 1.0, 1.0]),
                  loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                  loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(type='StandardRoIHead',
                  bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                          roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                          out_channels=64, featmap_strides=[4, 8, 16, 32]),
                  bbox_head=dict(type='Shared2FCBBoxHead', in_channels=64, fc_out_channels=128, roi_feat_size=7,
                                 num_classes=3,
                                 bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                                 target_stds=[0.1, 0.1, 0.2, 0.2]),
                                 reg_class_agnostic=False,
                                 loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                                 loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                               match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
                              add_gt_as_proposals=False),
                 allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=1000, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1,
                               add_gt_as_proposals=True),
                  pos_weight=-1, debug=False)),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
                  rcnn=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)))


@pytest.fixture(scope='module')
def batch():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale=(320, 240), keep_ratio=True), dict(type='PackDetInputs')]
    ds = DATASETS.build(dict(type='VOCDataset', data_root=str(BCCD), ann_file='ImageSets/Main/train.txt',
                             data_prefix=dict(sub_data_root=''), metainfo=dict(classes=('RBC', 'WBC', 'Platelets')),
                             pipeline=pipeline))
    return pseudo_collate([ds[0], ds[1]])


def test_faster_rcnn_trains_on_bccd(batch):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    model.train()
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = []
    for _ in range(4):
        log_vars = model.train_step(copy.deepcopy(batch), optim)
        history.append({k: v.item() for k, v in log_vars.items()})
    for logged in history:
        assert set(logged) == {'loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'acc', 'loss_bbox'}
        assert all(torch.isfinite(torch.tensor(v)) for v in logged.values())
        assert logged['loss'] == pytest.approx(sum(v for k, v in logged.items() if k.startswith('loss_')), rel=1e-5)
    # a fresh random head starts near chance (RPN: ln 2, RoI: ln 4) and fits the same batch better each step
    # (loss_bbox may grow: it only counts positives, and better proposals make more RoIs positive)
    assert history[0]['loss_rpn_cls'] == pytest.approx(0.693, abs=0.02)
    assert history[0]['loss_cls'] == pytest.approx(1.386, abs=0.05)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls'):
        assert history[-1][key] < history[0][key], key
    # backward + SGD reached both heads, the neck and the unfrozen backbone, not the frozen stem
    params = dict(model.named_parameters())
    for name in ('rpn_head.rpn_conv.weight', 'rpn_head.rpn_reg.weight', 'roi_head.bbox_head.shared_fcs.0.weight',
                 'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_reg.weight',
                 'neck.fpn_convs.0.conv.weight', 'backbone.layer4.1.conv2.weight'):
        assert not torch.equal(params[name].detach(), before[name]), name
    assert torch.equal(params['backbone.conv1.weight'].detach(), before['backbone.conv1.weight'])


def test_faster_rcnn_predict_and_tensor_modes(batch):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        results = model.test_step(copy.deepcopy(batch))
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        cls_score, bbox_pred = model(data['inputs'], data['data_samples'], mode='tensor')[0]
    assert cls_score.shape == (400, 4) and bbox_pred.shape == (400, 12)  # 2 images x 200 proposals
    for sample in results:
        pred = sample.pred_instances
        assert len(pred) == 50
        assert pred.bboxes.dtype == torch.float32 and pred.labels.dtype == torch.long
        h, w = sample.metainfo['ori_shape']
        assert (h, w) == (480, 640)
        assert pred.bboxes[:, 2].max() <= w and pred.bboxes[:, 3].max() <= h and pred.bboxes.min() >= 0
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])
        assert pred.scores_per_class.shape == (50, 3)
        torch.testing.assert_close(pred.scores_per_class.gather(1, pred.labels[:, None])[:, 0], pred.scores)
        assert set(pred.labels.tolist()) <= {0, 1, 2}


def test_two_stage_without_rpn_uses_given_proposals(batch):
    cfg = copy.deepcopy(MODEL)
    cfg.pop('rpn_head')
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    assert not model.with_rpn and model.with_roi_head
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    with pytest.raises(ValueError, match='proposals'):
        model(data['inputs'], data['data_samples'], mode='predict')
    from kiln.structures import InstanceData
    for sample in data['data_samples']:
        sample.proposals = InstanceData(bboxes=torch.tensor([[10., 10., 60., 50.], [100., 80., 200., 200.]]))
    with torch.no_grad():
        out = model(data['inputs'], data['data_samples'], mode='predict')
    # 2 proposals x 3 classes at score_thr 0 -> at most 6 detections per image, all inside the original image
    assert all(1 <= len(s.pred_instances) <= 6 for s in out)
