"""FCNMaskHead: MMDetection layout, targets/loss wiring and the grid-sample mask pasting (hand-checked cases)."""
import numpy as np
import pytest
import torch

from kiln.det.models.roi_heads.mask_heads import FCNMaskHead
from kiln.det.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from kiln.registry import MODELS
from kiln.structures import InstanceData

TEST_CFG = dict(mask_thr_binary=0.5)


def small_head(**kw):
    cfg = dict(type='FCNMaskHead', num_convs=4, in_channels=64, conv_out_channels=64, num_classes=3)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_state_dict_keys_shapes_and_forward():
    head = small_head()
    assert isinstance(head, FCNMaskHead)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    expected = {f'convs.{i}.conv.weight': (64, 64, 3, 3) for i in range(4)}
    expected.update({f'convs.{i}.conv.bias': (64,) for i in range(4)})
    expected.update({'upsample.weight': (64, 64, 2, 2), 'upsample.bias': (64,),
                     'conv_logits.weight': (3, 64, 1, 1), 'conv_logits.bias': (3,)})
    assert shapes == expected
    assert sum(p.numel() for p in head.parameters()) == 4 * (64 * 64 * 9 + 64) + 64 * 64 * 4 + 64 + 3 * 64 + 3
    out = head(torch.randn(5, 64, 14, 14))
    assert out.shape == (5, 3, 28, 28)
    # class-agnostic, bilinear upsampling (no deconv weights) and no upsampling at all
    agn = small_head(class_agnostic=True, upsample_cfg=dict(type='bilinear', scale_factor=2))
    assert 'upsample.weight' not in agn.state_dict()
    assert agn(torch.randn(2, 64, 14, 14)).shape == (2, 1, 28, 28)
    assert small_head(upsample_cfg=dict(type=None, scale_factor=2))(torch.randn(1, 64, 14, 14)).shape == \
        (1, 3, 14, 14)


def test_bad_configs():
    with pytest.raises(ValueError, match='upsample'):
        small_head(upsample_cfg=dict(type='pixel', scale_factor=2))
    with pytest.raises(NotImplementedError, match='carafe'):
        small_head(upsample_cfg=dict(type='carafe', scale_factor=2))
    with pytest.raises(ValueError, match='init_cfg'):
        small_head(init_cfg=dict(type='Normal', std=0.01))


def test_init_weights_kaiming_zero_bias():
    torch.manual_seed(0)
    head = small_head()
    torch.nn.init.constant_(head.conv_logits.bias, 3.0)
    head.init_weights()
    assert torch.count_nonzero(head.conv_logits.bias) == 0
    assert torch.count_nonzero(head.upsample.bias) == 0
    # kaiming fan_out for conv_logits: std = sqrt(2 / (out_channels * k * k)) = sqrt(2 / 3)
    std = head.conv_logits.weight.std().item()
    assert 0.5 < std < 1.1


def test_paste_full_mask_into_integer_box_covers_exactly_the_box():
    masks = torch.ones(1, 1, 28, 28)
    boxes = torch.tensor([[10., 20., 30., 40.]])
    for skip_empty in (True, False):
        pasted, idx = _do_paste_mask(masks, boxes, 50, 60, skip_empty=skip_empty)
        full = torch.zeros(1, 50, 60, dtype=torch.bool)
        full[(slice(None),) + idx] = pasted >= 0.5
        assert full.sum() == 20 * 20
        assert full[0, 20:40, 10:30].all()
    # skip_empty computes only the box neighbourhood [floor(x0) - 1, ceil(x1) + 1)
    _, idx = _do_paste_mask(masks, boxes, 50, 60, skip_empty=True)
    assert idx == (slice(19, 41), slice(9, 31))


def test_paste_half_pixel_edges_and_left_half():
    # A box edge through a pixel centre samples the mask border with weight exactly 0.5 (>= 0.5 keeps it);
    # the four corner pixels get 0.5 * 0.5 and are dropped.
    masks = torch.ones(1, 1, 28, 28)
    pasted, idx = _do_paste_mask(masks, torch.tensor([[10.5, 20.5, 30.5, 40.5]]), 50, 60)
    full = torch.zeros(50, 60, dtype=torch.bool)
    full[idx] = pasted[0] >= 0.5
    assert full.sum() == 21 * 21 - 4
    assert full[20:41, 11:30].all() and full[21:40, 10:31].all()
    assert not full[20, 10] and not full[40, 30]
    assert pasted[0][full[idx]].min() == 0.5
    # left half of the mask on -> left half of the box
    half = torch.zeros(1, 1, 28, 28)
    half[..., :14] = 1
    pasted, idx = _do_paste_mask(half, torch.tensor([[0., 0., 28., 28.]]), 28, 28)
    full = torch.zeros(28, 28, dtype=torch.bool)
    full[idx] = pasted[0] >= 0.5
    assert full[:, :14].all() and not full[:, 14:].any()


def _results(bboxes, labels):
    r = InstanceData()
    r.bboxes = torch.tensor(bboxes, dtype=torch.float32)
    r.labels = torch.tensor(labels)
    r.scores = torch.ones(len(labels))
    return r


def test_predict_by_feat_selects_label_channel_and_rescales():
    head = small_head()
    logits = torch.full((2, 3, 28, 28), -10.0)
    logits[:, 1] = 10.0  # only class 1 predicts a full mask
    results = [_results([[20., 40., 60., 80.], [20., 40., 60., 80.]], [1, 0])]
    meta = dict(ori_shape=(50, 60), scale_factor=(2.0, 2.0), img_shape=(100, 120))
    out = head.predict_by_feat((logits,), results, [meta], TEST_CFG, rescale=True)[0]
    assert out.masks.dtype == torch.bool and out.masks.shape == (2, 50, 60)
    assert out.masks[0].sum() == 400 and out.masks[0, 20:40, 10:30].all()
    assert out.masks[1].sum() == 0
    assert torch.equal(out.bboxes, torch.tensor([[10., 20., 30., 40.]] * 2))  # rescaled in place
    # without rescale: masks at ori_shape * scale_factor, boxes untouched
    results = [_results([[20., 40., 60., 80.]], [1])]
    out = head.predict_by_feat((logits[:1],), results, [meta], TEST_CFG, rescale=False)[0]
    assert out.masks.shape == (1, 100, 120) and out.masks.sum() == 1600
    # soft masks with mask_thr_binary < 0
    results = [_results([[20., 40., 60., 80.]], [1])]
    out = head.predict_by_feat((logits[:1],), results, [meta], dict(mask_thr_binary=-1), rescale=True)[0]
    assert out.masks.dtype == torch.uint8 and out.masks.max() == 254  # sigmoid(10) * 255 truncated


def test_predict_by_feat_empty_and_length_check():
    head = small_head()
    results = [_results(np.zeros((0, 4)), [])]
    results[0].labels = torch.zeros(0, dtype=torch.long)
    meta = dict(ori_shape=(50, 60), scale_factor=(2.0, 2.0))
    out = head.predict_by_feat((torch.zeros(0, 3, 28, 28),), results, [meta], TEST_CFG, rescale=True)[0]
    assert out.masks.shape == (0, 50, 60) and out.masks.dtype == torch.bool
    with pytest.raises(ValueError, match='one of each per image'):
        head.predict_by_feat((), results, [meta], TEST_CFG)


def test_cpu_per_box_pasting_equals_whole_image_pasting():
    torch.manual_seed(0)
    probs = torch.rand(6, 1, 28, 28)
    xy = torch.rand(6, 2) * 40
    wh = torch.rand(6, 2) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    whole, _ = _do_paste_mask(probs, boxes, 64, 80, skip_empty=False)
    for i in range(6):
        part, idx = _do_paste_mask(probs[i:i + 1], boxes[i:i + 1], 64, 80, skip_empty=True)
        canvas = torch.zeros(64, 80)
        canvas[idx] = part[0]
        assert torch.equal(canvas >= 0.5, whole[i] >= 0.5)


def test_loss_and_target_uses_label_channel_and_mask_targets():
    from types import SimpleNamespace

    from kiln.det.structures.mask import BitmapMasks
    head = small_head()
    m = np.zeros((2, 20, 20), dtype=np.uint8)
    m[0, 5:15, 5:15] = 1
    m[1, :, :10] = 1
    gt = InstanceData()
    gt.bboxes = torch.tensor([[5., 5., 15., 15.], [0., 0., 10., 20.]])
    gt.labels = torch.tensor([2, 0])
    gt.masks = BitmapMasks(m, 20, 20)
    res = SimpleNamespace(pos_priors=torch.tensor([[5., 5., 15., 15.], [0., 0., 20., 20.]]),
                          pos_assigned_gt_inds=torch.tensor([0, 1]), pos_gt_labels=torch.tensor([2, 0]))
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 28, 28, requires_grad=True)
    out = head.loss_and_target(logits, [res], [gt], dict(mask_size=28))
    targets = out['mask_targets']
    assert targets.shape == (2, 28, 28)
    assert targets[1, :, :14].eq(1).all() and targets[1, :, 14:].eq(0).all()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[[0, 1], [2, 0]], targets)
    loss = out['loss_mask']['loss_mask']
    assert torch.allclose(loss.sum(), expected)
    loss.sum().backward()
    assert logits.grad[:, 1].abs().sum() == 0  # channels of other classes get no gradient
    assert logits.grad[0, 2].abs().sum() > 0
    # no positive RoI: a zero loss that still back-propagates
    empty = SimpleNamespace(pos_priors=torch.zeros(0, 4), pos_assigned_gt_inds=torch.zeros(0, dtype=torch.long),
                            pos_gt_labels=torch.zeros(0, dtype=torch.long))
    z = head.loss_and_target(torch.zeros(0, 3, 28, 28, requires_grad=True), [empty], [gt], dict(mask_size=28))
    assert z['loss_mask']['loss_mask'] == 0 and z['mask_targets'].shape == (0, 28, 28)
    with pytest.raises(ValueError, match='no masks'):
        gt2 = InstanceData()
        gt2.bboxes = gt.bboxes
        head.get_targets([res], [gt2], dict(mask_size=28))
