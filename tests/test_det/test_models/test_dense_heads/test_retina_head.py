import torch

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.det.models.task_modules import MaxIoUAssigner
from kiln.registry import MODELS
from kiln.structures import InstanceData

TRAIN_CFG = dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                               ignore_iof_thr=-1),
                 sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False)
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=100)


def _head():
    return MODELS.build(dict(
        type='RetinaHead', num_classes=2, in_channels=8, stacked_convs=1, feat_channels=8,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0), train_cfg=TRAIN_CFG, test_cfg=TEST_CFG))


def test_retina_head_keys_loss_against_reference_and_predict():
    torch.manual_seed(0)
    head = _head()
    head.init_weights()
    assert {'retina_cls.weight', 'retina_reg.bias', 'cls_convs.0.conv.weight', 'reg_convs.0.conv.bias'} <= \
        set(head.state_dict())
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]  # a 64 x 64 input
    gt = InstanceData(bboxes=torch.tensor([[4., 4., 36., 30.], [30., 20., 60., 62.]]), labels=torch.tensor([1, 0]))
    cls, reg = head(feats)
    assert cls[0].shape == (1, 9 * 2, 8, 8) and reg[1].shape == (1, 9 * 4, 4, 4)
    meta = dict(img_shape=(64, 64), pad_shape=(64, 64), batch_input_shape=(64, 64))
    losses = head.loss_by_feat(cls, reg, [gt], [meta])

    # reference: assign, then focal loss over all anchors and L1 on the positives' deltas, both / num_pos
    anchors = torch.cat(head.prior_generator.grid_priors([(8, 8), (4, 4)]))
    res = MaxIoUAssigner(0.5, 0.4, 0).assign(InstanceData(priors=anchors), gt)
    pos = (res.gt_inds > 0).nonzero().flatten()
    assert len(pos) > 0
    labels = torch.full((len(anchors),), 2)
    labels[pos] = gt.labels[res.gt_inds[pos] - 1]
    weights = (res.gt_inds >= 0).float()
    flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, 2) for c in cls])
    flat_reg = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, 4) for r in reg])
    n = float(len(pos))
    # per-level lists as in MMDetection; their sums are the whole-batch losses
    assert len(losses['loss_cls']) == len(cls) and len(losses['loss_bbox']) == len(reg)
    losses = {k: sum(v) for k, v in losses.items()}
    torch.testing.assert_close(losses['loss_cls'], head.loss_cls(flat_cls, labels, weights, avg_factor=n))
    targets = head.bbox_coder.encode(anchors[pos], gt.bboxes[res.gt_inds[pos] - 1])
    torch.testing.assert_close(losses['loss_bbox'], (flat_reg[pos] - targets).abs().sum() / n)

    res = head.predict_by_feat(cls, reg, batch_img_metas=[dict(meta, ori_shape=(32, 32), scale_factor=(2., 2.))],
                               cfg=dict(TEST_CFG, score_thr=0.001), rescale=True)[0]
    assert 0 < len(res) <= 100
    assert res.bboxes.shape[1] == 4 and res.scores_per_class.shape == (len(res), 2)
    assert (res.bboxes >= 0).all() and (res.bboxes <= 32).all()
    torch.testing.assert_close(res.scores_per_class[torch.arange(len(res)), res.labels], res.scores)
