import math

import pytest
import torch
import torch.nn.functional as F

from kiln.det.models.losses import (CrossEntropyLoss, FocalLoss, GIoULoss, IoULoss, L1Loss, SmoothL1Loss,
                                    weight_reduce_loss)

EPS = torch.finfo(torch.float32).eps


def _manual_focal(logits, onehot, gamma=2.0, alpha=0.25):
    p = torch.sigmoid(logits)
    pt = torch.where(onehot == 1, p, 1 - p)
    at = torch.where(onehot == 1, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    return -at * (1 - pt) ** gamma * torch.log(pt)


def test_focal_loss_matches_formula_with_background_label_and_avg_factor():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 2, 3, 1, 3, 3])  # 3 = background: all-zero target row
    onehot = torch.zeros(6, 3)
    onehot[[0, 1, 3], [0, 2, 1]] = 1
    manual = _manual_focal(logits, onehot)
    loss = FocalLoss(loss_weight=2.0)
    torch.testing.assert_close(loss(logits, labels), 2.0 * manual.mean())
    torch.testing.assert_close(loss(logits, labels, avg_factor=3.0), 2.0 * manual.sum() / (3.0 + EPS))
    w = torch.tensor([1., 0., 1., 1., 0., 1.])
    torch.testing.assert_close(loss(logits, labels, weight=w, reduction_override='sum'),
                               2.0 * (manual * w[:, None]).sum())
    # per-row weight with avg_factor (the dense heads' call: row sums weighted), and its gradient
    x = logits.clone().requires_grad_()
    out = loss(x, labels, weight=w, avg_factor=3.0)
    torch.testing.assert_close(out, 2.0 * (manual * w[:, None]).sum() / (3.0 + EPS))
    out.backward()
    y = logits.clone().requires_grad_()
    (2.0 * (_manual_focal(y, onehot) * w[:, None]).sum() / (3.0 + EPS)).backward()
    torch.testing.assert_close(x.grad, y.grad)
    assert torch.all(x.grad[w == 0] == 0)
    # 'none' keeps the (N, C) element losses, weighted per row
    torch.testing.assert_close(loss(logits, labels, weight=w, reduction_override='none'), 2.0 * manual * w[:, None])


def test_iou_and_giou_losses():
    pred = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 10.]])
    target = torch.tensor([[5., 0., 15., 10.], [20., 20., 30., 30.]])
    iou = torch.tensor([50 / 150, 0.0])
    loss = IoULoss(reduction='none')(pred, target)
    torch.testing.assert_close(loss, -torch.log(iou.clamp(min=1e-6)))
    assert IoULoss(mode='linear', reduction='none')(pred, target)[0].item() == pytest.approx(1 - 1 / 3)
    # GIoU = IoU - (hull - union) / hull; hull of the 2nd pair is 30 x 30
    giou = torch.tensor([1 / 3 - 0.0, 0.0 - (900 - 200) / 900])
    torch.testing.assert_close(GIoULoss(reduction='none')(pred, target), 1 - giou, atol=1e-5, rtol=1e-5)
    w = torch.tensor([2.0, 0.0])
    torch.testing.assert_close(GIoULoss()(pred, target, weight=w, avg_factor=4.0), 2 * (1 - giou[0]) / (4.0 + EPS))


def test_l1_and_smooth_l1():
    pred = torch.tensor([[0.0, 1.0, 3.0, -2.0]])
    target = torch.zeros(1, 4)
    torch.testing.assert_close(L1Loss()(pred, target), torch.tensor(6.0 / 4))
    beta = 1.0
    d = pred.abs()
    ref = torch.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta)
    torch.testing.assert_close(SmoothL1Loss(beta=beta, reduction='sum')(pred, target), ref.sum())
    with pytest.raises(ValueError, match='shape'):
        L1Loss()(pred, torch.zeros(2, 4))


def test_cross_entropy_sigmoid_and_softmax():
    logits = torch.tensor([0.5, -1.0, 2.0])
    target = torch.tensor([1.0, 0.0, 0.3])
    ref = -(target * torch.log(torch.sigmoid(logits)) + (1 - target) * torch.log(1 - torch.sigmoid(logits)))
    ce = CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(ce(logits, target), ref.mean())
    torch.testing.assert_close(ce(logits, target, weight=torch.tensor([1., 0., 1.]), avg_factor=2.0),
                               (ref[0] + ref[2]) / (2.0 + EPS))
    scores = torch.randn(4, 5)
    labels = torch.tensor([0, 4, 2, 2])
    torch.testing.assert_close(CrossEntropyLoss(loss_weight=0.5)(scores, labels),
                               0.5 * F.cross_entropy(scores, labels))


def test_reduction_errors():
    with pytest.raises(ValueError, match='reduction'):
        FocalLoss(reduction='avg')
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(torch.ones(3), reduction='sum', avg_factor=2.0)
    assert math.isclose(weight_reduce_loss(torch.ones(3), avg_factor=2.0).item(), 1.5, rel_tol=1e-6)
