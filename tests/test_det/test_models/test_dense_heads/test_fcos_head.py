import pytest
import torch

from kiln.det.models.dense_heads import FCOSHead
from kiln.det.structures import DetDataSample
from kiln.structures import InstanceData

INF = 1e8


def _gt(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def _head(**kw):
    cfg = dict(num_classes=3, in_channels=8, feat_channels=8, stacked_convs=1, strides=(8, 16),
               regress_ranges=((-1, 16), (16, INF)), norm_cfg=dict(type='GN', num_groups=4))
    cfg.update(kw)
    return FCOSHead(**cfg)


def test_state_dict_keys_and_forward_shapes():
    head = _head()
    keys = set(head.state_dict())
    for k in ('cls_convs.0.conv.weight', 'cls_convs.0.gn.weight', 'reg_convs.0.gn.bias', 'conv_cls.weight',
              'conv_reg.weight', 'conv_centerness.weight', 'scales.0.scale', 'scales.1.scale'):
        assert k in keys, k
    assert 'cls_convs.0.conv.bias' not in keys
    cls, reg, ctr = head([torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)])
    assert [c.shape for c in cls] == [(2, 3, 4, 4), (2, 3, 2, 2)]
    assert [r.shape for r in reg] == [(2, 4, 4, 4), (2, 4, 2, 2)] and all((r > 0).all() for r in reg)
    assert [c.shape for c in ctr] == [(2, 1, 4, 4), (2, 1, 2, 2)]
    head.init_weights()
    torch.testing.assert_close(head.conv_cls.bias, torch.full((3,), -torch.log(torch.tensor(99.0)).item()))


def test_targets_regress_ranges_on_hand_made_case():
    head = _head()
    points = head.prior_generator.grid_priors([(4, 4), (2, 2)])  # level 0: 4, 12, 20, 28; level 1: 8, 24
    small = [0, 0, 16, 16]  # max distance <= 16 from inside points: level 0 only
    large = [0, 0, 32, 32]  # max distance >= 20: level 1 only
    labels, targets = head.get_targets(points, [_gt([large, small], [0, 1]), _gt([], [])])
    assert labels.shape == (2, 20) and targets.shape == (2, 20, 4)
    lvl0 = labels[0, :16].reshape(4, 4)
    assert lvl0.tolist() == [[1, 1, 3, 3], [1, 1, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]]
    assert labels[0, 16:].tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(targets[0, 0], torch.tensor([4., 4., 12., 12.]))    # point (4, 4) -> small box
    torch.testing.assert_close(targets[0, 5], torch.tensor([12., 12., 4., 4.]))    # point (12, 12)
    torch.testing.assert_close(targets[0, 16], torch.tensor([8., 8., 24., 24.]))   # point (8, 8) -> large box
    assert (labels[1] == 3).all()  # image without boxes: all background


def test_targets_smallest_area_wins_center_sampling_and_norm_on_bbox():
    head = _head(strides=(8,), regress_ranges=((-1, INF),))
    points = head.prior_generator.grid_priors([(8, 8)])
    labels, targets = head.get_targets(points, [_gt([[0, 0, 64, 64], [0, 0, 24, 24]], [0, 2])])
    grid = labels[0].reshape(8, 8)
    assert (grid[:3, :3] == 2).all() and grid[3, 3] == 0 and grid[0, 3] == 0

    head = _head(strides=(8,), regress_ranges=((-1, INF),), center_sampling=True, center_sample_radius=1.5,
                 norm_on_bbox=True)
    labels, targets = head.get_targets(points, [_gt([[0, 0, 64, 64]], [1])])
    # centre region: 32 +- 12 px -> only points 28 and 36 lie strictly inside
    pos = (labels[0] == 1).reshape(8, 8).nonzero().tolist()
    assert pos == [[3, 3], [3, 4], [4, 3], [4, 4]]
    torch.testing.assert_close(targets[0, 3 * 8 + 3], torch.tensor([28., 28., 36., 36.]) / 8)


def _reference_loss(head, cls_scores, bbox_preds, centernesses, gts):
    """Per-image, index-based FCOS loss written like the reference implementation (MMDetection 3.x)."""
    sizes = [c.shape[-2:] for c in cls_scores]
    points = head.prior_generator.grid_priors(sizes)
    all_pts = torch.cat(points)
    ranges = torch.cat([all_pts.new_tensor(r).expand(len(p), 2) for r, p in zip(head.regress_ranges, points)])
    labels_all, targets_all = [], []
    for gt in gts:
        b, lab = gt.bboxes, gt.labels
        n, g = len(all_pts), len(b)
        if g == 0:
            labels_all.append(torch.full((n,), head.num_classes))
            targets_all.append(torch.zeros(n, 4))
            continue
        areas = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None].repeat(n, 1)
        xs, ys = all_pts[:, 0:1].expand(n, g), all_pts[:, 1:2].expand(n, g)
        t = torch.stack((xs - b[:, 0], ys - b[:, 1], b[:, 2] - xs, b[:, 3] - ys), -1)
        inside = t.min(-1)[0] > 0
        md = t.max(-1)[0]
        in_range = (md >= ranges[:, 0:1]) & (md <= ranges[:, 1:2])
        areas[~inside] = INF
        areas[~in_range] = INF
        min_area, idx = areas.min(1)
        labels = lab[idx].clone()
        labels[min_area == INF] = head.num_classes
        labels_all.append(labels)
        targets_all.append(t[range(n), idx])
    n_img = cls_scores[0].size(0)
    flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(n_img, -1, head.num_classes) for c in cls_scores], 1)
    flat_reg = torch.cat([r.permute(0, 2, 3, 1).reshape(n_img, -1, 4) for r in bbox_preds], 1).reshape(-1, 4)
    flat_ctr = torch.cat([c.permute(0, 2, 3, 1).reshape(n_img, -1) for c in centernesses], 1).reshape(-1)
    labels, targets = torch.cat(labels_all), torch.cat(targets_all)
    pts = all_pts.repeat(n_img, 1)
    pos = ((labels >= 0) & (labels < head.num_classes)).nonzero().reshape(-1)
    num_pos = max(float(len(pos)), 1.0)
    loss_cls = head.loss_cls(flat_cls.reshape(-1, head.num_classes), labels, avg_factor=num_pos)
    pt = targets[pos]
    lr, tb = pt[:, [0, 2]], pt[:, [1, 3]]
    ctr_t = torch.sqrt(lr.min(-1)[0] / lr.max(-1)[0] * tb.min(-1)[0] / tb.max(-1)[0])
    dec = head.bbox_coder.decode
    loss_bbox = head.loss_bbox(dec(pts[pos], flat_reg[pos]), dec(pts[pos], pt), weight=ctr_t,
                               avg_factor=max(ctr_t.sum().item(), 1e-6))
    loss_ctr = head.loss_centerness(flat_ctr[pos], ctr_t, avg_factor=num_pos)
    return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_ctr)


def test_loss_matches_index_based_reference_and_backprops_only_positives():
    torch.manual_seed(0)
    head = _head()
    head.init_weights()
    feats = [torch.randn(3, 8, 8, 8), torch.randn(3, 8, 4, 4)]  # a 64 x 64 input
    gts = [_gt([[2, 3, 20, 14], [30, 30, 62, 60], [5, 40, 15, 50]], [0, 2, 1]), _gt([], []),
           _gt([[0, 0, 64, 64], [10, 10, 26, 30]], [1, 1])]
    cls, reg, ctr = head(feats)
    ours = head.loss_by_feat(cls, reg, ctr, gts, [dict(img_shape=(64, 64))] * 3)
    ref = _reference_loss(head, cls, reg, ctr, gts)
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-5, atol=1e-6)
    reg[0].retain_grad()
    ours['loss_bbox'].backward()
    labels, _ = head.get_targets(head.prior_generator.grid_priors([(8, 8), (4, 4)]), gts)
    neg0 = (labels[:, :64] == 3).reshape(3, 8, 8)
    assert torch.all(reg[0].grad.permute(0, 2, 3, 1)[neg0] == 0)
    assert reg[0].grad.abs().sum() > 0


def test_loss_without_any_box_is_finite():
    head = _head()
    cls, reg, ctr = head([torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)])
    losses = head.loss_by_feat(cls, reg, ctr, [_gt([], [])], [dict(img_shape=(32, 32))])
    assert losses['loss_bbox'].item() == 0 and losses['loss_centerness'].item() == 0
    assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'].item() > 0


def test_predict_rescales_and_keeps_scores_per_class():
    head = _head(strides=(8,), regress_ranges=((-1, INF),),
                 test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                               nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    # one 2 x 2 level -> points (4, 4), (12, 4), (4, 12), (12, 12) in a 16 x 16 input
    logits = torch.full((1, 3, 2, 2), -10.0)
    logits[0, :, 0, 0] = torch.tensor([2.0, -4.0, 0.5])   # point (4, 4): class 0 and class 2 pass score_thr
    logits[0, 1, 1, 1] = 1.0                              # point (12, 12): class 1
    dist = torch.full((1, 4, 2, 2), 2.0)
    dist[0, :, 1, 1] = 6.0                                # (12, 12) +- 6 -> clipped by img_shape 16
    ctr = torch.zeros(1, 1, 2, 2)
    ctr[0, 0, 1, 1] = 1.0
    meta = dict(img_shape=(16, 16), ori_shape=(7, 7), scale_factor=(2.0, 2.0))
    res = head.predict_by_feat([logits], [dist], [ctr], batch_img_metas=[meta], rescale=True)[0]
    assert res.labels.tolist() == [1, 0, 2]  # sorted by score: 0.73 * 0.73, 0.88 * 0.5, 0.62 * 0.5
    probs = torch.sigmoid(logits[0].permute(1, 2, 0).reshape(4, 3))
    factors = torch.sigmoid(ctr.reshape(4))
    torch.testing.assert_close(res.scores, torch.stack([probs[3, 1] * factors[3], probs[0, 0] * factors[0],
                                                       probs[0, 2] * factors[0]]))
    torch.testing.assert_close(res.scores_per_class, torch.stack([probs[3] * factors[3], probs[0] * factors[0],
                                                                 probs[0] * factors[0]]))
    rows = torch.arange(3)
    torch.testing.assert_close(res.scores_per_class[rows, res.labels], res.scores)
    torch.testing.assert_close(res.scores_per_class[:2].max(1).values, res.scores[:2])  # argmax-class rows
    # (4, 4) +- 2 -> [2, 2, 6, 6] / 2; (12, 12) +- 6 -> [6, 6, 16, 16] (img clip) / 2 -> [3, 3, 8, 8]: as in
    # MMDetection, rescaled boxes are not clipped again to ori_shape (7, 7)
    torch.testing.assert_close(res.bboxes, torch.tensor([[3., 3., 8., 8.], [1., 1., 3., 3.], [1., 1., 3., 3.]]))
    assert res.bboxes.dtype == torch.float32 and res.labels.dtype == torch.long


def test_predict_through_data_samples_and_empty_result():
    head = _head(test_cfg=dict(score_thr=0.99, nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))
    head.init_weights()  # prior prob 0.01: nothing passes 0.99
    sample = DetDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32), scale_factor=(1.0, 1.0)))
    res = head.predict([torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)], [sample])[0]
    assert len(res) == 0 and res.bboxes.shape == (0, 4) and res.scores_per_class.shape == (0, 3)
    with pytest.raises(ValueError, match='scale_factor'):
        head.predict([torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)],
                     [DetDataSample(metainfo=dict(img_shape=(32, 32)))])
