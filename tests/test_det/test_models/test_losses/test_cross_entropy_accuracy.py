"""CrossEntropyLoss sigmoid/mask modes (MMDetection semantics) and accuracy."""
import pytest
import torch
import torch.nn.functional as F

from kiln.det.models.losses import CrossEntropyLoss, accuracy

EPS = torch.finfo(torch.float32).eps


def test_sigmoid_labels_background_and_ignored():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.1], [0.3, 0.3], [-0.2, 0.4]])
    labels = torch.tensor([1, 2, -1, 0])  # 2 = background (all-zero target), -1 = ignored (weight 0)
    target = torch.tensor([[0., 1.], [0., 0.], [0., 0.], [1., 0.]])
    per = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    per[2] = 0
    ce = CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(ce(logits, labels, avg_factor=3.0), per.sum() / (3.0 + EPS))
    torch.testing.assert_close(CrossEntropyLoss(use_sigmoid=True, avg_non_ignore=True)(logits, labels),
                               per.sum() / (6.0 + EPS))
    # objectness (C = 1, RPN): label 0 = object, 1 = background
    rpn = ce(torch.tensor([[0.0], [0.0]]), torch.tensor([0, 1]), torch.tensor([1., 1.]), avg_factor=2)
    torch.testing.assert_close(rpn, torch.log(torch.tensor(2.0)))


def test_softmax_weights_and_ignore_index():
    scores = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, -100, 2])
    w = torch.tensor([1., 1., 0., 1., 1.])
    per = F.cross_entropy(scores, labels, reduction='none')
    torch.testing.assert_close(CrossEntropyLoss()(scores, labels, w, avg_factor=3.0), (per * w).sum() / (3 + EPS))
    torch.testing.assert_close(CrossEntropyLoss(avg_non_ignore=True)(scores, labels), per.sum() / (4 + EPS))


def test_mask_mode_selects_the_class_channel():
    pred = torch.randn(3, 4, 5, 5)
    target = (torch.rand(3, 5, 5) > 0.5).float()
    cls = torch.tensor([2, 0, 3])
    ref = F.binary_cross_entropy_with_logits(pred[torch.arange(3), cls], target)
    loss = CrossEntropyLoss(use_mask=True, loss_weight=2.0)(pred, target, cls)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, 2 * ref)
    with pytest.raises(ValueError, match='avg_factor'):
        CrossEntropyLoss(use_mask=True)(pred, target, cls, avg_factor=3)
    with pytest.raises(ValueError, match='exclusive'):
        CrossEntropyLoss(use_sigmoid=True, use_mask=True)


def test_accuracy_percent_topk_and_threshold():
    pred = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    target = torch.tensor([1, 1, 2, 0])
    torch.testing.assert_close(accuracy(pred, target), torch.tensor(75.0))
    top1, top2 = accuracy(pred, target, topk=(1, 2))
    assert top1.item() == 75.0 and top2.item() == 100.0
    assert accuracy(pred, target, thresh=0.45).item() == 50.0
    assert accuracy(pred[:0], target[:0]).item() == 0.0
