from pathlib import Path

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
    with pytest.raises(NotImplementedError):
        DetDataPreprocessor(pad_mask=True)
