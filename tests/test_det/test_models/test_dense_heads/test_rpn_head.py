"""RPNHead: MMDetection layer names, per-level losses with random sampling, proposals (nms_pre, per-level NMS,
min_bbox_size, max_per_img)."""
import pytest
import torch

import kiln.det.models  # noqa: F401
from kiln.det.structures import DetDataSample
from kiln.registry import MODELS
from kiln.structures import InstanceData

TRAIN = dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                           match_low_quality=True, ignore_iof_thr=-1),
             sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
             allowed_border=-1, pos_weight=-1, debug=False)
TEST = dict(nms_pre=50, max_per_img=20, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0)


def _head(**kw):
    cfg = dict(type='RPNHead', in_channels=8, feat_channels=8,
               anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4, target_stds=[1.0] * 4),
               loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
               loss_bbox=dict(type='L1Loss', loss_weight=1.0), train_cfg=TRAIN, test_cfg=TEST)
    cfg.update(kw)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _samples():
    metas = dict(img_shape=(64, 64), pad_shape=(64, 64), batch_input_shape=(64, 64), scale_factor=(2.0, 2.0),
                 ori_shape=(32, 32))
    out = []
    for boxes, labels in ([[[4., 4., 36., 36.], [30., 10., 50., 40.]], [0, 2]], [[[10., 20., 40., 60.]], [1]]):
        s = DetDataSample(metainfo=metas)
        s.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.tensor(labels))
        out.append(s)
    return out


def _feats():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(2, 8, 16, 16, generator=g), torch.randn(2, 8, 8, 8, generator=g))


def test_rpn_layers_and_outputs():
    head = _head()
    assert set(head.state_dict()) == {'rpn_conv.weight', 'rpn_conv.bias', 'rpn_cls.weight', 'rpn_cls.bias',
                                      'rpn_reg.weight', 'rpn_reg.bias'}
    cls, reg = head(_feats())
    assert cls[0].shape == (2, 3, 16, 16) and reg[1].shape == (2, 12, 8, 8)
    stacked = _head(num_convs=2)
    assert 'rpn_conv.1.conv.weight' in stacked.state_dict()
    with pytest.raises(ValueError, match='num_classes'):
        _head(num_classes=3)


def test_rpn_loss_is_per_level_and_ignores_gt_labels():
    head = _head()
    samples = _samples()
    torch.manual_seed(0)
    losses, proposals = head.loss_and_predict(_feats(), samples, proposal_cfg=TEST)
    assert len(losses['loss_rpn_cls']) == 2 and len(losses['loss_rpn_bbox']) == 2
    assert all(torch.isfinite(v) for v in losses['loss_rpn_cls'] + losses['loss_rpn_bbox'])
    # near-zero init: each sampled anchor costs ln 2, normalised by the 2 x 64 sampled anchors
    total = sum(losses['loss_rpn_cls'])
    assert total.item() == pytest.approx(0.693, abs=0.01)
    assert sum(losses['loss_rpn_bbox']).item() > 0
    # labels 1/2 are objects too: relabelling every gt to class 0 gives bit-identical losses
    for s in samples:
        s.gt_instances.labels = torch.zeros_like(s.gt_instances.labels)
    torch.manual_seed(0)
    again, _ = head.loss_and_predict(_feats(), samples, proposal_cfg=TEST)
    for key in losses:
        for a, b in zip(losses[key], again[key]):
            assert torch.equal(a, b)
    total.backward()
    assert head.rpn_cls.weight.grad is not None
    assert [len(p) for p in proposals] == [20, 20] and not proposals[0].bboxes.requires_grad


def test_rpn_proposals_nms_pre_nms_and_size_filter():
    head = _head()
    metas = [s.metainfo for s in _samples()]
    cls, reg = head(_feats())
    props = head.predict_by_feat(cls, reg, batch_img_metas=metas,
                                 cfg=dict(nms_pre=30, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                                          min_bbox_size=0))
    for p in props:
        assert len(p) <= 30 + 30 and torch.all(p.scores[:-1] >= p.scores[1:]) and torch.all(p.labels == 0)
        assert p.bboxes.min() >= 0 and p.bboxes.max() <= 64
    # without NMS-suppression (threshold 1) every pre-selected anchor survives
    no_sup = head.predict_by_feat(cls, reg, batch_img_metas=metas,
                                  cfg=dict(nms_pre=30, max_per_img=1000, nms=dict(type='nms', iou_threshold=1.0),
                                           min_bbox_size=0))
    assert [len(p) for p in no_sup] == [60, 60]
    big = head.predict_by_feat(cls, reg, batch_img_metas=metas,
                               cfg=dict(nms_pre=30, max_per_img=1000, nms=dict(type='nms', iou_threshold=1.0),
                                        min_bbox_size=40))
    wh = big[0].bboxes[:, 2:] - big[0].bboxes[:, :2]
    assert 0 < len(big[0]) < 60 and torch.all(wh > 40)
    rescaled = head.predict_by_feat(cls, reg, batch_img_metas=metas, cfg=TEST, rescale=True)
    torch.testing.assert_close(rescaled[0].bboxes, head.predict_by_feat(cls, reg, batch_img_metas=metas,
                                                                        cfg=TEST)[0].bboxes / 2)
