"""FCOS parity with MMDetection 3.3.0 (reference model, weights and outputs in shared/mmdet_refs/fcos).

The model is built from MMDetection's own config (``fcos_r50-caffe_fpn_gn-head_1x_coco``: caffe-style ResNet with
frozen BatchNorm, FPN with extra convs on the outputs, GN head; shrunk as the reference README says), loads the
reference state dict with strict=True and reproduces the reference input batch bit-exactly, the intermediate
outputs, the top-100 predictions of each image (matched box for box) and the training losses; the full-size
config has MMDetection's parameter count. The model runs once per module (2 images at 800x1088).
"""
import copy
import hashlib

import pytest
import torch

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.registry import MODELS
from test_det.test_models.mmdet_refs import REFS, ref_samples

FAMILY = REFS / 'fcos'

pytestmark = pytest.mark.skipif(not FAMILY.is_dir(), reason='shared MMDetection references are absent')


@pytest.fixture(scope='module')
def model(ref_cfg, ref_sd):
    model = MODELS.build(copy.deepcopy(ref_cfg['model']))
    model.load_state_dict(ref_sd, strict=True)
    return model.eval()


@pytest.fixture(scope='module')
def run(mmref, refs, model):
    """The reference batch through kiln's DetDataPreprocessor, backbone, neck and head (computed once)."""
    raw = mmref.load_raw_inputs(str(FAMILY))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=raw, data_samples=ref_samples(refs['test']['metas'])), False)
        x, samples = data['inputs'], data['data_samples']
        backbone = model.backbone(x)
        neck = model.neck(backbone)
        outs = model.bbox_head(neck)
        metas = [dict(s.metainfo) for s in samples]
        # what model.predict(x, samples) returns, without a second forward pass (`kiln test` below runs that)
        preds = model.add_pred_to_datasample(
            samples, model.bbox_head.predict_by_feat(*outs, batch_img_metas=metas, rescale=True))
    return dict(x=x, samples=samples, backbone=backbone, neck=neck, outs=outs, preds=preds)


def full_size_model_cfg(ref_cfg):
    """Undo the README's shrinking edits: MMDetection's fcos_r50-caffe_fpn_gn-head_1x_coco model."""
    m = copy.deepcopy(ref_cfg['model'])
    m['backbone'].update(depth=50, init_cfg=dict(type='Pretrained',
                                                 checkpoint='open-mmlab://detectron/resnet50_caffe'))
    m['neck'].update(in_channels=[256, 512, 1024, 2048], out_channels=256)
    m['bbox_head'].update(in_channels=256, feat_channels=256, num_classes=80)
    m['test_cfg']['score_thr'] = 0.05
    return m


def test_parameter_counts_and_state_dict_layout(ref_cfg, refs, model):
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == refs['params']['shrunk'] == 11_719_245
    # frozen_stages=1 and norm_cfg requires_grad=False (every backbone BN frozen)
    assert sum(p.numel() for p in params if p.requires_grad) == refs['params']['shrunk_trainable'] == 11_552_781
    index = refs['state_dict']['index']
    sd = model.state_dict()
    assert list(sd) == list(index)  # same keys, same order as MMDetection's model.state_dict()
    for key, info in index.items():
        assert list(sd[key].shape) == info['shape'], key
        assert abs(sd[key].double().sum().item() - info['sum']) <= 1e-6 * max(1.0, info['abs_sum']), key
    head = model.bbox_head
    assert isinstance(head.cls_convs[0].gn, torch.nn.GroupNorm) and head.cls_convs[0].conv.bias is None
    assert model.backbone.style == 'caffe'


def test_full_size_config_parameter_count(ref_cfg, refs):
    model = MODELS.build(full_size_model_cfg(ref_cfg))  # init_cfg is not applied at build time: no download
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == refs['params']['full_size'] == 32_295_322
    assert sum(p.numel() for p in params if p.requires_grad) == refs['params']['full_size_trainable']
    # caffe style: the stride of a Bottleneck is on its first 1x1 conv
    block = model.backbone.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)


def test_data_preprocessor_rebuilds_the_reference_batch_bit_exactly(refs, run):
    x = run['x']
    assert list(x.shape) == refs['input']['batch_shape'] and x.dtype == torch.float32
    assert hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest() == refs['input']['sha256_float32']
    for sample, meta in zip(run['samples'], refs['test']['metas']):
        assert tuple(sample.metainfo['pad_shape']) == tuple(meta['pad_shape'])
        assert tuple(sample.metainfo['batch_input_shape']) == tuple(meta['batch_input_shape'])


def _check_stats(t, stats, rel):
    assert list(t.shape) == stats['shape']
    scale = max(stats['abs_sum'], 1e-6)
    assert abs(t.double().sum().item() - stats['sum']) <= rel * scale
    assert abs(t.double().abs().sum().item() - stats['abs_sum']) <= rel * scale
    torch.testing.assert_close(t.flatten()[:16], torch.tensor(stats['first16']), rtol=1e-5, atol=1e-5)
    assert abs(t.min().item() - stats['min']) <= 1e-5 * max(1.0, abs(stats['min']))
    assert abs(t.max().item() - stats['max']) <= 1e-5 * max(1.0, abs(stats['max']))


def test_intermediate_outputs_match(refs, run):
    stats = refs['test']['intermediate_stats']
    for i, t in enumerate(run['backbone']):
        _check_stats(t, stats[f'backbone.{i}'], 1e-7)
    for i, t in enumerate(run['neck']):
        _check_stats(t, stats[f'neck.{i}'], 1e-6)
    for j, per_level in enumerate(run['outs']):  # cls_scores, bbox_preds
        for i, t in enumerate(per_level):
            _check_stats(t, stats[f'forward_tensor.{j}.{i}'], 1e-6)


def _match(bboxes, labels, ref_bboxes, ref_labels):
    """For each reference detection, the index of our detection with the same label and the nearest box
    (max coordinate difference), and that difference."""
    d = (bboxes[None] - ref_bboxes[:, None]).abs().amax(-1)
    d[ref_labels[:, None] != labels[None]] = float('inf')
    return d.min(1)


def test_predictions_match_box_for_box(refs, run):
    for img, pred in enumerate(run['preds']):
        ref = refs['test']['predictions'][img]
        ref_b, ref_s = torch.tensor(ref['bboxes']), torch.tensor(ref['scores'])
        ref_l = torch.tensor(ref['labels'])
        res = pred.pred_instances
        assert len(res) == len(ref_s) == 100
        assert res.bboxes.dtype == torch.float32 and res.labels.dtype == torch.long
        # the same 100 detections: match each reference detection to ours (label + box), one to one
        d = (res.bboxes[None] - ref_b[:, None]).abs().amax(-1)
        d[ref_l[:, None] != res.labels[None]] = float('inf')
        dist, j = d.min(1)
        assert torch.all(dist <= 1e-3), dist.max()
        assert len(set(j.tolist())) == 100
        torch.testing.assert_close(res.scores[j], ref_s, rtol=0, atol=1e-4)
        assert (res.scores[j] - ref_s).abs().max() <= 1e-6  # in practice float noise only
        # scores are distinct here, so the order is the reference order up to noise-level swaps
        assert (j - torch.arange(100)).abs().max() <= 2


def test_training_losses_match(refs, model, mmref):
    raw = mmref.load_raw_inputs(str(FAMILY))
    model.train()
    try:
        assert not model.backbone.bn1.training and model.bbox_head.training  # norm_eval keeps BN frozen
        data = model.data_preprocessor(
            dict(inputs=raw, data_samples=ref_samples(refs['train']['metas'], refs['train']['gt'])), True)
        losses = model(data['inputs'], data['data_samples'], mode='loss')
        _, log_vars = model.parse_losses(losses)
    finally:
        model.eval()
    ref = refs['train']['losses']
    assert set(losses) == set(ref) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    for key, value in ref.items():
        assert abs(losses[key].item() - value) <= 1e-4 * abs(value), (key, losses[key].item(), value)
    for key, value in refs['train']['parsed_log_vars'].items():
        assert abs(log_vars[key].item() - value) <= 1e-4 * abs(value), key
