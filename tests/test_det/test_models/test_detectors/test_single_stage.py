import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.det.models.detectors import FCOS, RetinaNet
from kiln.det.structures import DetDataSample
from kiln.registry import MODELS
from kiln.structures import InstanceData

BCCD = Path(__file__).parents[4] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=100)


def fcos_r50_cfg():
    """MMDetection's fcos_r50 FPN GN-head model config (without its data_preprocessor)."""
    return dict(
        type='FCOS',
        backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                      norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='caffe'),
        neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1,
                  add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
        bbox_head=dict(type='FCOSHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
                       strides=[8, 16, 32, 64, 128],
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                       loss_bbox=dict(type='IoULoss', loss_weight=1.0),
                       loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        test_cfg=TEST_CFG)


def slim_fcos_cfg(num_classes=3):
    return dict(
        type='FCOS',
        backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3), norm_eval=False),
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=64, num_outs=3),
        bbox_head=dict(type='FCOSHead', num_classes=num_classes, in_channels=64, feat_channels=64, stacked_convs=2,
                       strides=(8, 16, 32), regress_ranges=((-1, 64), (64, 128), (128, 1e8)),
                       norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
        test_cfg=TEST_CFG)


def test_mmdet_fcos_config_builds_with_mmdet_state_dict_keys():
    model = MODELS.build(fcos_r50_cfg())
    assert isinstance(model, FCOS)
    keys = set(model.state_dict())
    for k in ('backbone.conv1.weight', 'backbone.bn1.running_mean', 'backbone.layer1.0.conv1.weight',
              'backbone.layer1.0.downsample.0.weight', 'backbone.layer1.0.downsample.1.weight',
              'neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.0.conv.weight', 'neck.fpn_convs.4.conv.weight',
              'bbox_head.cls_convs.0.conv.weight', 'bbox_head.cls_convs.0.gn.weight', 'bbox_head.conv_cls.weight',
              'bbox_head.conv_reg.weight', 'bbox_head.conv_centerness.weight', 'bbox_head.scales.0.scale',
              'bbox_head.scales.4.scale'):
        assert k in keys, k
    assert model.bbox_head.test_cfg == TEST_CFG and model.with_neck


def test_mmdet_retinanet_config_builds():
    model = MODELS.build(dict(
        type='RetinaNet',
        backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3)),
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=32, start_level=0,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=2, feat_channels=32,
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                       loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                     ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=TEST_CFG))
    assert isinstance(model, RetinaNet)
    assert {'bbox_head.retina_cls.weight', 'bbox_head.retina_reg.weight'} <= set(model.state_dict())
    sample = _sample(InstanceData(bboxes=torch.tensor([[10., 10., 40., 50.]]), labels=torch.tensor([2])),
                     (64, 64), (64, 64), (1.0, 1.0))
    losses = model(torch.randn(1, 3, 64, 64), [sample], mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    assert all(len(v) == 5 and all(torch.isfinite(t) for t in v) for v in losses.values())  # per FPN level


def _sample(gt, img_shape, ori_shape, scale_factor):
    s = DetDataSample(metainfo=dict(img_shape=img_shape, ori_shape=ori_shape, scale_factor=scale_factor,
                                    batch_input_shape=img_shape, pad_shape=img_shape))
    s.gt_instances = gt
    return s


def _load_bccd(stem, scale=0.5):
    """An image resized by ``scale`` and normalised by hand (ImageNet mean/std, RGB), and its boxes."""
    img = Image.open(BCCD / 'JPEGImages' / f'{stem}.jpg').convert('RGB')
    w, h = img.size
    img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
    x = (x - torch.tensor([123.675, 116.28, 103.53])[:, None, None]) / torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    boxes, labels = [], []
    for obj in ET.parse(BCCD / 'Annotations' / f'{stem}.xml').findall('object'):
        bb = obj.find('bndbox')
        boxes.append([float(bb.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')])
        labels.append(CLASSES.index(obj.find('name').text.strip()))
    gt = InstanceData(bboxes=torch.tensor(boxes) * scale, labels=torch.tensor(labels))
    return x, _sample(gt, tuple(x.shape[1:]), (h, w), (scale, scale))


def test_fcos_sgd_steps_on_real_bccd_images_decrease_loss_and_predict_in_original_pixels():
    torch.manual_seed(0)
    model = MODELS.build(slim_fcos_cfg())
    model.init_weights()
    stems = sorted(p.stem for p in (BCCD / 'JPEGImages').glob('*.jpg'))[:2]
    xs, samples = zip(*(_load_bccd(s, scale=0.25) for s in stems))  # quarter size keeps the test fast
    inputs = torch.stack(xs)
    assert inputs.shape == (2, 3, 120, 160)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    history = []
    for _ in range(8):
        losses = model(inputs, list(samples), mode='loss')
        loss = sum(losses.values())
        history.append(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(h) for h in history)
    assert sum(history[-3:]) / 3 < 0.6 * history[0], [round(float(h), 3) for h in history]

    model.eval()
    with torch.no_grad():
        out = model(inputs, list(samples), mode='predict')
        feats = model(inputs, mode='tensor')
    assert out is not None and len(out) == 2 and out[0] is samples[0]
    pred = out[0].pred_instances
    assert len(pred) > 0
    assert pred.scores_per_class.shape == (len(pred), 3)
    assert float(pred.bboxes[:, 2].max()) <= 640 and float(pred.bboxes[:, 3].max()) <= 480
    assert float(pred.bboxes[:, 2].max()) > 160  # rescaled from the quarter-size input to the 640 x 480 original
    assert len(feats) == 3 and feats[0][0].shape == (2, 3, 15, 20)
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(inputs, mode='train')
