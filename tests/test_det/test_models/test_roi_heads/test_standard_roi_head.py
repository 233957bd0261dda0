"""StandardRoIHead: losses, predictions and the mask-branch interface it calls (MMDetection 3.x)."""
import copy

import torch
from torch import nn

import kiln.det.models  # noqa: F401
from kiln.det.structures import DetDataSample
from kiln.registry import MODELS
from kiln.structures import InstanceData

ROI_HEAD = dict(
    type='StandardRoIHead',
    bbox_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7,
                                                                      sampling_ratio=0),
                            out_channels=8, featmap_strides=[4, 8, 16, 32]),
    bbox_head=dict(type='Shared2FCBBoxHead', in_channels=8, fc_out_channels=32, roi_feat_size=7, num_classes=3,
                   bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                   target_stds=[0.1, 0.1, 0.2, 0.2]),
                   loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                   loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                 match_low_quality=False, ignore_iof_thr=-1),
                   sampler=dict(type='RandomSampler', num=32, pos_fraction=0.25, neg_pos_ub=-1,
                                add_gt_as_proposals=True),
                   pos_weight=-1, debug=False),
    test_cfg=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5), max_per_img=10, mask_thr_binary=0.5))


class StubMaskHead(nn.Module):
    """Records the MMDetection 3.x mask-head calls StandardRoIHead makes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 3, 1)
        self.calls = {}

    def forward(self, x):
        return self.conv(x)

    def loss_and_target(self, mask_preds, sampling_results, batch_gt_instances, rcnn_train_cfg):
        self.calls['loss'] = (mask_preds.shape, sum(r.pos_inds.numel() for r in sampling_results))
        return dict(loss_mask=dict(loss_mask=mask_preds.mean() * 0 + 1.0))

    def predict_by_feat(self, mask_preds, results_list, batch_img_metas, rcnn_test_cfg, rescale):
        self.calls['predict'] = ([m.shape[0] for m in mask_preds], rescale)
        for res, meta in zip(results_list, batch_img_metas):
            res.masks = torch.zeros(len(res), *meta['ori_shape'], dtype=torch.bool)
        return results_list


def _inputs():
    g = torch.Generator().manual_seed(0)
    feats = tuple(torch.randn(2, 8, 128 // s, 128 // s, generator=g) for s in (4, 8, 16, 32, 64))
    meta = dict(img_shape=(128, 128), pad_shape=(128, 128), scale_factor=(2.0, 2.0), ori_shape=(64, 64))
    samples = []
    for boxes, labels in (([[10., 10., 60., 60.], [70., 20., 120., 90.]], [0, 2]), ([[5., 50., 50., 120.]], [1])):
        s = DetDataSample(metainfo=meta)
        s.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.tensor(labels))
        samples.append(s)
    xy = torch.rand(40, 2, generator=g) * 90
    proposals = [InstanceData(bboxes=torch.cat([xy, xy + 10 + torch.rand(40, 2, generator=g) * 40], 1).clamp(max=128),
                              scores=torch.rand(40, generator=g)) for _ in range(2)]
    return feats, samples, proposals


def test_roi_head_loss_and_predict():
    torch.manual_seed(0)
    head = MODELS.build(copy.deepcopy(ROI_HEAD))
    head.init_weights()
    assert head.with_bbox and not head.with_mask
    feats, samples, proposals = _inputs()
    torch.manual_seed(0)
    losses = head.loss(feats, proposals, samples)
    assert set(losses) == {'loss_cls', 'acc', 'loss_bbox'}
    # fresh head: uniform softmax over 4 classes
    assert abs(losses['loss_cls'].item() - torch.log(torch.tensor(4.)).item()) < 0.05
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    assert head.bbox_head.shared_fcs[0].weight.grad is not None
    head.eval()
    with torch.no_grad():
        results = head.predict(feats, proposals, samples, rescale=True)
        cls_score, bbox_pred = head.forward(feats, proposals)
    assert cls_score.shape == (80, 4) and bbox_pred.shape == (80, 12)
    for res in results:
        assert len(res) == 10 and res.bboxes.max() <= 64 + 1e-4  # max_per_img, original-image coordinates
        assert res.scores_per_class.shape == (10, 3)


def test_roi_head_mask_branch_interface():
    cfg = copy.deepcopy(ROI_HEAD)
    cfg['mask_head'] = dict(type=StubMaskHead)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    assert head.with_mask and head.share_roi_extractor and head.mask_roi_extractor is head.bbox_roi_extractor
    feats, samples, proposals = _inputs()
    torch.manual_seed(0)
    losses = head.loss(feats, proposals, samples)
    assert set(losses) == {'loss_cls', 'acc', 'loss_bbox', 'loss_mask'}
    shape, num_pos = head.mask_head.calls['loss']
    assert shape == (num_pos, 3, 7, 7) and num_pos >= 3  # the gts are positives of themselves
    head.eval()
    with torch.no_grad():
        results = head.predict(feats, proposals, samples, rescale=True)
    assert head.mask_head.calls['predict'] == ([10, 10], True)
    # with a mask branch the box head leaves boxes in input-image pixels; the mask head rescales them
    assert all(r.masks.shape == (10, 64, 64) for r in results)
    # a separate mask extractor pools the positive RoIs itself
    cfg['mask_roi_extractor'] = copy.deepcopy(cfg['bbox_roi_extractor'])
    separate = MODELS.build(cfg)
    assert not separate.share_roi_extractor
    torch.manual_seed(0)
    assert 'loss_mask' in separate.loss(feats, proposals, samples)


def test_roi_head_without_ground_truth_or_proposals():
    torch.manual_seed(0)
    head = MODELS.build(copy.deepcopy(ROI_HEAD))
    feats, samples, proposals = _inputs()
    for s in samples:
        s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = head.loss(feats, proposals, samples)
    # every sampled RoI is background: classification still trains, the box loss is 0 but stays in the graph
    assert torch.isfinite(losses['loss_cls']) and losses['loss_bbox'].item() == 0
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    head.eval()
    empty = [InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0)) for _ in samples]
    with torch.no_grad():
        results = head.predict(feats, empty, samples, rescale=True)
    assert [len(r) for r in results] == [0, 0] and results[0].scores_per_class.shape == (0, 3)
