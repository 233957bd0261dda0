import pytest
import torch
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.det.models.task_modules import ATSSAssigner
from kiln.registry import MODELS
from kiln.structures import InstanceData


def _head():
    return MODELS.build(dict(
        type='ATSSHead', num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
                              strides=[8, 16]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                      max_per_img=100)))


def test_atss_head_keys_loss_against_reference_and_predict():
    torch.manual_seed(0)
    head = _head()
    head.init_weights()
    assert {'atss_cls.weight', 'atss_reg.bias', 'atss_centerness.weight', 'scales.1.scale',
            'cls_convs.0.conv.weight', 'reg_convs.0.gn.weight'} <= set(head.state_dict())
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]  # a 64 x 64 input
    gt = InstanceData(bboxes=torch.tensor([[4., 4., 36., 30.], [30., 20., 60., 62.]]), labels=torch.tensor([1, 0]))
    cls, reg, ctr = head(feats)
    assert cls[0].shape == (1, 2, 8, 8) and reg[1].shape == (1, 4, 4, 4) and ctr[0].shape == (1, 1, 8, 8)
    meta = dict(img_shape=(64, 64), pad_shape=(64, 64), batch_input_shape=(64, 64))
    losses = head.loss_by_feat(cls, reg, ctr, [gt], [meta])

    # reference with explicit indexing of the positives (MMDetection's ATSSHead.loss_by_feat_single)
    anchors = torch.cat(head.prior_generator.grid_priors([(8, 8), (4, 4)]))
    res = ATSSAssigner(topk=9).assign(InstanceData(priors=anchors), [64, 16], gt)
    pos = (res.gt_inds > 0).nonzero().flatten()
    assert set(res.gt_inds[pos].tolist()) == {1, 2}  # both boxes have positives
    n = float(len(pos))
    labels = torch.full((len(anchors),), 2)
    labels[pos] = gt.labels[res.gt_inds[pos] - 1]
    flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, 2) for c in cls])
    onehot = torch.nn.functional.one_hot(labels, 3)[:, :2].float()
    ref_cls = sigmoid_focal_loss(flat_cls, onehot, alpha=0.25, gamma=2.0, reduction='sum') / n
    boxes = gt.bboxes[res.gt_inds[pos] - 1]
    a = anchors[pos]
    c = (a[:, :2] + a[:, 2:]) / 2
    lr = torch.stack([c[:, 0] - boxes[:, 0], boxes[:, 2] - c[:, 0]], 1)
    tb = torch.stack([c[:, 1] - boxes[:, 1], boxes[:, 3] - c[:, 1]], 1)
    ctr_t = torch.sqrt(lr.min(1).values / lr.max(1).values * tb.min(1).values / tb.max(1).values)
    flat_reg = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, 4) for r in reg])[pos]
    pred = head.bbox_coder.decode(a, flat_reg)
    ref_bbox = 2.0 * (generalized_box_iou_loss(pred, boxes, reduction='none') * ctr_t).sum() / max(ctr_t.sum(), 1)
    flat_ctr = torch.cat([x.permute(0, 2, 3, 1).reshape(-1) for x in ctr])[pos]
    ref_ctr = torch.nn.functional.binary_cross_entropy_with_logits(flat_ctr, ctr_t, reduction='sum') / n
    assert losses['loss_cls'].item() == pytest.approx(ref_cls.item(), rel=1e-4)
    assert losses['loss_bbox'].item() == pytest.approx(ref_bbox.item(), rel=1e-4)
    assert losses['loss_centerness'].item() == pytest.approx(ref_ctr.item(), rel=1e-4)
    sum(losses.values()).backward()
    assert head.atss_reg.weight.grad.abs().sum() > 0

    # no ground truth: only the classification loss, over negatives
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = head.loss_by_feat(*head(feats), [empty], [meta])
    assert losses['loss_cls'].item() > 0 and losses['loss_bbox'].item() == 0 and losses['loss_centerness'] == 0

    head.eval()
    with torch.no_grad():
        dets = head.predict_by_feat(*head(feats), batch_img_metas=[dict(meta, scale_factor=(1., 1.))])
    assert dets[0].bboxes.shape[1] == 4 and len(dets[0].scores) == len(dets[0].labels)
