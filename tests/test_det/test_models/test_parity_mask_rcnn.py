"""Mask R-CNN parity with MMDetection 3.3.0 (reference model, weights and outputs in shared/mmdet_refs/mask_rcnn).

Also a training smoke test on real balloon images with polygon masks.
"""
import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

import kiln.det.models  # noqa: F401  (registers the models)
from kiln.det.structures import DetDataSample
from kiln.det.structures.mask import PolygonMasks
from kiln.registry import MODELS
from test_det.test_models.mmdet_refs import REFS, SHARED, ref_samples
from kiln.structures import InstanceData

FAMILY = REFS / 'mask_rcnn'
BCCD_ANN = SHARED / 'data' / 'bccd' / 'Annotations'
BALLOON = SHARED / 'data' / 'balloon'

pytestmark = pytest.mark.skipif(not FAMILY.is_dir(), reason='shared MMDetection references are absent')


@pytest.fixture(scope='module')
def ref_model(mmref, ref_cfg):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(ref_cfg['model']))
    model.load_state_dict(mmref.load_state_dict(str(FAMILY)), strict=True)
    return model


def full_size_model_cfg(ref_cfg):
    """Undo the README's shrinking edits: MMDetection's mask-rcnn_r50_fpn_1x_coco model."""
    m = copy.deepcopy(ref_cfg['model'])
    m['backbone'].update(depth=50)
    m['neck'].update(in_channels=[256, 512, 1024, 2048], out_channels=256)
    m['rpn_head'].update(in_channels=256, feat_channels=256)
    roi = m['roi_head']
    roi['bbox_roi_extractor']['out_channels'] = 256
    roi['bbox_head'].update(in_channels=256, fc_out_channels=1024, num_classes=80)
    roi['mask_roi_extractor']['out_channels'] = 256
    roi['mask_head'].update(in_channels=256, conv_out_channels=256, num_classes=80)
    return m


def test_reference_config_builds_with_mask_options(ref_cfg, ref_model, mmref):
    assert ref_cfg['model']['data_preprocessor']['pad_mask'] is True
    assert ref_model.data_preprocessor.pad_mask is True
    mask_head = ref_model.roi_head.mask_head
    assert type(mask_head).__name__ == 'FCNMaskHead'
    assert ref_cfg['model']['roi_head']['mask_head']['loss_mask'] == dict(type='CrossEntropyLoss', use_mask=True,
                                                                          loss_weight=1.0)
    assert mask_head.loss_mask.use_mask is True
    # parameter count and state-dict layout identical to MMDetection's model
    assert sum(p.numel() for p in ref_model.parameters()) == 12_008_290
    ref_sd = mmref.load_state_dict(str(FAMILY))
    ours = ref_model.state_dict()
    assert list(ours) == list(ref_sd)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}


def test_full_size_config_parameter_count(ref_cfg):
    model = MODELS.build(full_size_model_cfg(ref_cfg))
    assert sum(p.numel() for p in model.parameters()) == 44_396_336




def _batch_inputs(mmref, ref_cfg):
    pre = ref_cfg['model']['data_preprocessor']
    raw = mmref.load_raw_inputs(str(FAMILY))
    return mmref.rebuild_inputs(raw, pre['mean'], pre['std'], pre['bgr_to_rgb'], pre['pad_size_divisor'])


def _match(ref_boxes, ref_scores, ref_labels, boxes, scores, labels):
    """Greedy one-to-one matching of reference to kiln detections: same label, score within 1e-4, boxes within
    1e-3 px. Returns {ref index: our index}."""
    used, pairs = set(), {}
    for i in range(len(ref_scores)):
        ok = ((labels == ref_labels[i]) & ((scores - ref_scores[i]).abs() <= 1e-4)
              & ((boxes - ref_boxes[i]).abs().amax(dim=1) <= 1e-3))
        for j in torch.nonzero(ok).flatten().tolist():
            if j not in used:
                used.add(j)
                pairs[i] = j
                break
    return pairs


def test_predictions_match_mmdetection(ref_model, refs, ref_cfg, mmref):
    ref_pred = torch.load(FAMILY / 'predictions.pt', weights_only=True)
    inputs = _batch_inputs(mmref, ref_cfg)
    feats = []
    hook = ref_model.neck.register_forward_hook(lambda module, args, out: feats.append(out))
    ref_model.eval()
    try:
        with torch.no_grad():
            results = ref_model.predict(inputs, ref_samples(refs['test']['metas'], drop=()), rescale=True)
    finally:
        hook.remove()
    for sample, meta in zip(results, refs['test']['metas']):
        stem = Path(meta['img_path']).stem
        rb, rs = ref_pred[f'{stem}.bboxes'].float(), ref_pred[f'{stem}.scores'].float()
        rl, rm = ref_pred[f'{stem}.labels'].long(), ref_pred[f'{stem}.mask_sums'].long()
        pred = sample.pred_instances
        assert len(pred) == len(rs) == 100
        assert pred.masks.dtype == torch.bool and pred.masks.shape == (100, 480, 640)
        assert pred.scores_per_class.shape == (100, 3)
        pairs = _match(rb, rs, rl, pred.bboxes, pred.scores, pred.labels)
        # Detections tied in score with the last kept one may be swapped for an equal-score twin at the cut-off.
        missing = [i for i in range(len(rs)) if i not in pairs]
        assert all((rs[i] - rs.min()).abs() <= 1e-4 for i in missing), (stem, missing)
        assert len(pairs) >= 98, (stem, len(pairs))
        areas = pred.masks.flatten(1).sum(dim=1)
        for i, j in pairs.items():
            assert abs(int(areas[j]) - int(rm[i])) <= 1, (stem, i, int(areas[j]), int(rm[i]))
    # Raw mask logits of mode='tensor' (first 100 RPN proposals) against the reference's statistics.
    with torch.no_grad():
        proposals = ref_model.rpn_head.predict(feats[0], ref_samples(refs['test']['metas'], drop=()), rescale=False)
        mask_preds = ref_model.roi_head.forward(feats[0], proposals)[2]
    stats = refs['test']['intermediate_stats']['forward_tensor.0.2']
    assert list(mask_preds.shape) == stats['shape']
    assert float(mask_preds.double().sum()) == pytest.approx(stats['sum'], rel=1e-5)
    assert float(mask_preds.double().abs().sum()) == pytest.approx(stats['abs_sum'], rel=1e-5)
    assert torch.allclose(mask_preds.flatten()[:16], torch.tensor(stats['first16']), atol=1e-5)


def _train_samples(refs):
    """Ground truth as the reference built it: VOC boxes (XMLDataset: int(float(v)) - 1) as box-shaped polygons,
    rasterised at the original size (LoadAnnotations poly2mask), resized with the image (keep_ratio Resize:
    nearest), padded by the data preprocessor (pad_mask)."""
    samples = []
    for meta, gt in zip(refs['train']['metas'], refs['train']['gt']):
        root = ET.parse(BCCD_ANN / f'{Path(meta["img_path"]).stem}.xml').getroot()
        polys = []
        for obj in root.findall('object'):
            x1, y1, x2, y2 = (int(float(obj.find('bndbox').findtext(k))) - 1
                              for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            polys.append([np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)])
        h, w = meta['img_shape']
        masks = PolygonMasks(polys, *meta['ori_shape']).to_bitmap().rescale((1333, 800))
        assert (masks.height, masks.width) == (h, w)
        assert masks.areas.tolist() == gt['mask_sums']
        sample = DetDataSample()
        sample.set_metainfo({k: (tuple(v) if isinstance(v, list) else v) for k, v in meta.items()
                             if k not in ('batch_input_shape', 'pad_shape')})
        inst = InstanceData()
        inst.bboxes = torch.tensor(gt['bboxes'], dtype=torch.float32)
        inst.labels = torch.tensor(gt['labels'], dtype=torch.long)
        inst.masks = masks
        sample.gt_instances = inst
        samples.append(sample)
    return samples


def test_training_losses_match_mmdetection(ref_model, refs, mmref):
    raw = mmref.load_raw_inputs(str(FAMILY))
    data = ref_model.data_preprocessor(dict(inputs=list(raw), data_samples=_train_samples(refs)), True)
    masks = data['data_samples'][0].gt_instances.masks
    assert (masks.height, masks.width) == (800, 1088)  # pad_mask=True pads the masks to the batch shape
    ref_model.train()
    torch.manual_seed(0)
    losses = ref_model.loss(data['inputs'], data['data_samples'])
    _, log_vars = ref_model.parse_losses(losses)
    ref = refs['train']['parsed_log_vars']
    # Both images have fewer positives than the samplers' quotas (RPN 128, R-CNN 128), so every positive is
    # kept whatever the random stream: the mask and box-regression losses are deterministic.
    # The classification terms depend on which negatives were drawn.
    for key in ('loss_mask', 'loss_bbox', 'loss_rpn_bbox'):
        assert float(log_vars[key]) == pytest.approx(ref[key], rel=1e-5), key
    for key in ('loss_rpn_cls', 'loss_cls', 'acc'):
        assert float(log_vars[key]) == pytest.approx(ref[key], rel=0.05), key
    loss = sum(v for k, v in log_vars.items() if k.startswith('loss') and k != 'loss')
    assert float(log_vars['loss']) == pytest.approx(float(loss), rel=1e-6)


def test_balloon_training_smoke(ref_cfg):
    """Real balloon photos with polygon masks through the dataset pipeline; loss_mask has gradients."""
    from kiln.det.datasets import CocoDataset
    dataset = CocoDataset(
        ann_file=str(BALLOON / 'annotations' / 'instances_val.json'), data_prefix=dict(img=str(BALLOON / 'val')),
        metainfo=dict(classes=('balloon',)), filter_cfg=dict(filter_empty_gt=True),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='Resize', scale=(320, 320), keep_ratio=True), dict(type='PackDetInputs')])
    batch = [dataset[0], dataset[1]]
    cfg = copy.deepcopy(ref_cfg['model'])
    cfg['roi_head']['bbox_head']['num_classes'] = 1
    cfg['roi_head']['mask_head']['num_classes'] = 1
    cfg['train_cfg']['rpn']['sampler']['num'] = 64
    cfg['train_cfg']['rcnn']['sampler']['num'] = 64
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                        data_samples=[b['data_samples'] for b in batch]), True)
    assert max(data['inputs'].shape[-2:]) <= 320
    losses = model.loss(data['inputs'], data['data_samples'])
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(log_vars['loss_mask']) and 0.1 < float(log_vars['loss_mask']) < 5
    model.zero_grad()
    losses['loss_mask'].sum().backward()
    head = model.roi_head.mask_head
    assert head.conv_logits.weight.grad is not None and head.conv_logits.weight.grad.abs().sum() > 0
    assert head.convs[0].conv.weight.grad.abs().sum() > 0
    assert model.roi_head.bbox_head.fc_cls.weight.grad is None  # only the mask branch feeds loss_mask
