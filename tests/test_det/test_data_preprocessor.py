from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kiln.det.models.data_preprocessors  # noqa: F401  (registers DetDataPreprocessor)
from kiln.dataset import pseudo_collate
from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs, Resize
from kiln.det.models.data_preprocessors import DetDataPreprocessor
from kiln.registry import MODELS

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _batch() -> dict:
    """Two real BCCD images resized to different sizes (300x225 and 200x150), collated."""
    items = []
    for name, scale in (('BloodImage_00000', (300, 300)), ('BloodImage_00001', (200, 200))):
        r = dict(img_path=str(BCCD / 'JPEGImages' / f'{name}.jpg'), img_id=name,
                 instances=[dict(bbox=[10, 20, 110, 220], bbox_label=0, ignore_flag=0)])
        r = Resize(scale=scale, keep_ratio=True)(LoadAnnotations()(LoadImageFromFile()(r)))
        items.append(PackDetInputs()(r))
    return pseudo_collate(items)


def test_normalise_pad_and_shapes_on_real_images():
    batch = _batch()
    raw = [t.clone() for t in batch['inputs']]
    assert [tuple(t.shape) for t in raw] == [(3, 225, 300), (3, 150, 200)]
    pre = MODELS.build(dict(type='DetDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True,
                            pad_size_divisor=32, pad_value=0))
    out = pre(batch, training=False)
    inputs = out['inputs']
    assert inputs.dtype == torch.float32 and inputs.shape == (2, 3, 256, 320)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for i, img in enumerate(raw):
        expected = (img.flip(0).float() - mean) / std  # BGR -> RGB, then normalise
        h, w = img.shape[1:]
        torch.testing.assert_close(inputs[i, :, :h, :w], expected)
        # padding is at the bottom and on the right only, with pad_value (after normalisation)
        assert (inputs[i, :, h:, :] == 0).all() and (inputs[i, :, :, w:] == 0).all()
    samples = out['data_samples']
    assert [s.batch_input_shape for s in samples] == [(256, 320), (256, 320)]
    assert [s.pad_shape for s in samples] == [(256, 320), (160, 224)]
    assert samples[0].img_shape == (225, 300)  # other metainfo kept
    assert len(samples[1].gt_instances) == 1


def test_uint8_is_moved_to_the_device_before_normalisation(monkeypatch):
    pre = DetDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32)
    seen = []
    original = pre.cast_data

    def spy(data):
        if isinstance(data, dict) and 'inputs' in data:
            seen.extend(t.dtype for t in data['inputs'])
        return original(data)

    monkeypatch.setattr(pre, 'cast_data', spy)
    out = pre(_batch())
    assert seen == [torch.uint8, torch.uint8]  # what crosses to the device is the raw uint8 image
    assert out['inputs'].dtype == torch.float32
    assert out['inputs'].device == pre.device


class _AddOne(nn.Module):
    def forward(self, inputs, data_samples):
        for s in data_samples:
            s.set_metainfo(dict(augmented=True))
        return inputs + 1, data_samples


def test_batch_augments_only_in_training():
    pre = DetDataPreprocessor(mean=MEAN, std=STD, pad_size_divisor=32, batch_augments=[_AddOne()])
    val = pre(_batch(), training=False)
    train = pre(_batch(), training=True)
    torch.testing.assert_close(train['inputs'], val['inputs'] + 1)
    assert all(s.augmented for s in train['data_samples'])
    assert not any('augmented' in s for s in val['data_samples'])


def _mask_batch() -> dict:
    """The two BCCD images with a box-shaped bitmap mask and a polygon mask, collated."""
    items = []
    for name, scale in (('BloodImage_00000', (300, 300)), ('BloodImage_00001', (200, 200))):
        square = [10, 20, 110, 20, 110, 120, 10, 120]
        r = dict(img_path=str(BCCD / 'JPEGImages' / f'{name}.jpg'), img_id=name,
                 instances=[dict(bbox=[10, 20, 110, 120], bbox_label=0, ignore_flag=0, mask=[square]),
                            dict(bbox=[10, 20, 110, 120], bbox_label=1, ignore_flag=0, mask=[square])])
        r = LoadAnnotations(with_mask=True)(LoadImageFromFile()(r))
        items.append(PackDetInputs()(Resize(scale=scale, keep_ratio=True)(r)))
    return pseudo_collate(items)


def test_pad_mask_pads_gt_masks_to_the_batch_shape():
    pre = DetDataPreprocessor(mean=MEAN, std=STD, pad_size_divisor=32, pad_mask=True, mask_pad_value=7)
    batch = _mask_batch()
    before = [s.gt_instances.masks.masks.copy() for s in batch['data_samples']]
    assert [b.shape for b in before] == [(2, 225, 300), (2, 150, 200)]
    out = pre(batch, training=True)
    for sample, mask in zip(out['data_samples'], before):
        masks = sample.gt_instances.masks
        assert (masks.height, masks.width) == sample.batch_input_shape == (256, 320)
        assert masks.masks.shape == (2, 256, 320)
        h, w = mask.shape[1:]
        np.testing.assert_array_equal(masks.masks[:, :h, :w], mask)  # content kept at the top left
        assert (masks.masks[:, h:] == 7).all() and (masks.masks[:, :, w:] == 7).all()
        assert mask.sum() > 0
    # masks stay at image size outside training (MMDetection pads them for the losses only)
    val = pre(_mask_batch(), training=False)
    assert [s.gt_instances.masks.masks.shape for s in val['data_samples']] == [(2, 225, 300), (2, 150, 200)]
    # polygons only get a bigger canvas; pad_mask=False leaves everything alone
    from kiln.det.structures.mask import PolygonMasks
    sample = _mask_batch()['data_samples'][1]
    poly = PolygonMasks([[np.array([1., 1, 5, 1, 5, 5])]] * 2, *sample.img_shape)
    sample.gt_instances.masks = poly
    padded = pre(dict(inputs=[torch.zeros(3, *sample.img_shape, dtype=torch.uint8)], data_samples=[sample]),
                 training=True)['data_samples'][0].gt_instances.masks
    assert (padded.height, padded.width) == (160, 224) and padded.masks[0][0].tolist() == [1, 1, 5, 1, 5, 5]
    plain = DetDataPreprocessor(pad_size_divisor=32)(_mask_batch(), training=True)
    assert plain['data_samples'][1].gt_instances.masks.masks.shape == (2, 150, 200)


def test_pad_seg_pads_semantic_maps():
    from kiln.structures import BaseDataElement
    batch = _batch()
    for sample in batch['data_samples']:
        h, w = sample.img_shape
        sample.gt_sem_seg = BaseDataElement(sem_seg=torch.ones(1, h, w, dtype=torch.uint8))
    out = DetDataPreprocessor(pad_size_divisor=32, pad_seg=True, seg_pad_value=255)(batch, training=True)
    for sample in out['data_samples']:
        seg = sample.gt_sem_seg.sem_seg
        h, w = sample.img_shape
        assert seg.shape == (1, 256, 320) and (seg[:, :h, :w] == 1).all()
        assert (seg[:, h:] == 255).all() and (seg[:, :, w:] == 255).all()


def test_channels_last_option():
    """channels_last=True: NHWC strides in training and inference, same values; 'auto' (default) is on for a
    CPU batch; False gives NCHW; anything else raises."""
    cl = torch.channels_last
    kw = dict(type='DetDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32)
    default, on, off = (MODELS.build(dict(kw, **extra)) for extra in ({}, dict(channels_last=True),
                                                                       dict(channels_last=False)))
    assert default.channels_last == 'auto'
    plain = off(_batch(), training=False)['inputs']
    assert plain.is_contiguous()
    for training in (False, True):
        for pre in (on, default):
            out = pre(_batch(), training=training)['inputs']
            assert out.is_contiguous(memory_format=cl) and not out.is_contiguous() and torch.equal(out, plain)
    with pytest.raises(TypeError, match='channels_last'):
        MODELS.build(dict(kw, channels_last='yes'))


def test_channels_last_detector_predictions_equal():
    """A detector (ResNet-18 FPN RetinaNet, random init, real BCCD images) predicts the same from the
    channels_last batch as from the NCHW one, within float32 rounding."""
    from kiln.config import Config
    from kiln.registry import init_default_scope
    init_default_scope('kiln.det')
    cfg = Config.fromfile(str(Path(__file__).parents[2] / 'configs' / '_base_' / 'models' / 'retinanet_r50_fpn.py'))
    cfg.model.backbone.update(depth=18, init_cfg=None)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.test_cfg.score_thr = 0.0
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    outs = []
    for flag in (False, True):
        model.data_preprocessor.channels_last = flag
        with torch.no_grad():
            data = model.data_preprocessor(_batch(), False)
            assert data['inputs'].is_contiguous(memory_format=torch.channels_last) == flag
            outs.append(model(**data, mode='predict'))
    for a, b in zip(*outs):
        a, b = a.pred_instances, b.pred_instances
        assert len(a) == len(b) > 0
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.bboxes, b.bboxes, atol=1e-3, rtol=0)
        assert torch.equal(a.labels, b.labels)
