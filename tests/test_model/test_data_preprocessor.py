from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kiln.model import BaseDataPreprocessor, ImgDataPreprocessor
from kiln.registry import MODELS
from kiln.structures import BaseDataElement, InstanceData

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def load_bgr(name):
    rgb = np.asarray(Image.open(BCCD / 'JPEGImages' / f'{name}.jpg').convert('RGB'))
    return torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).permute(2, 0, 1).contiguous()  # BGR (3, H, W)


def test_img_preprocessor_matches_manual_normalise_and_pad():
    a = load_bgr('BloodImage_00001')            # (3, 480, 640)
    b = load_bgr('BloodImage_00003')[:, :301, :413]
    assert a.dtype == torch.uint8
    sample = BaseDataElement(metainfo=dict(img_id=1), gt=InstanceData(labels=torch.tensor([1])))
    pre = ImgDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32, pad_value=0)
    out = pre(dict(inputs=[a, b], data_samples=[sample, sample]), training=True)
    x = out['inputs']
    assert x.dtype == torch.float32 and x.shape == (2, 3, 480, 640)

    def manual(img):
        rgb = img[[2, 1, 0]].float()
        return (rgb - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)

    torch.testing.assert_close(x[0], manual(a))
    torch.testing.assert_close(x[1, :, :301, :413], manual(b))
    assert torch.all(x[1, :, 301:, :] == 0) and torch.all(x[1, :, :, 413:] == 0)
    assert out['data_samples'][0].img_id == 1


def test_padding_rounds_up_to_divisor_and_pad_value():
    img = load_bgr('BloodImage_00004')[:, :100, :130]
    out = ImgDataPreprocessor(pad_size_divisor=32, pad_value=7)(dict(inputs=[img]))
    assert out['inputs'].shape == (1, 3, 128, 160)
    torch.testing.assert_close(out['inputs'][0, :, :100, :130], img.float())
    assert torch.all(out['inputs'][0, :, 100:] == 7)
    assert out['data_samples'] is None


def test_stacked_tensor_input():
    imgs = torch.stack([load_bgr('BloodImage_00001')[:, :50, :60], load_bgr('BloodImage_00003')[:, :50, :60]])
    out = ImgDataPreprocessor(mean=[0, 0, 0], std=[2, 2, 2], rgb_to_bgr=True, pad_size_divisor=16)(
        dict(inputs=imgs))
    assert out['inputs'].shape == (2, 3, 64, 64)
    torch.testing.assert_close(out['inputs'][:, :, :50, :60], imgs.flip(1).float() / 2)


def test_preprocessor_errors():
    with pytest.raises(ValueError, match='cannot both'):
        ImgDataPreprocessor(bgr_to_rgb=True, rgb_to_bgr=True)
    with pytest.raises(ValueError, match='together'):
        ImgDataPreprocessor(mean=[1, 2, 3])
    pre = ImgDataPreprocessor(mean=[1, 2, 3], std=[1, 1, 1])
    with pytest.raises(ValueError, match=r'inputs\[1\] has 1 channels'):
        pre(dict(inputs=[torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(1, 4, 4, dtype=torch.uint8)]))
    with pytest.raises(TypeError, match='inputs'):
        pre(dict(inputs='nope'))


def test_device_follows_module():
    pre = MODELS.build(dict(type='BaseDataPreprocessor'))
    assert isinstance(pre, BaseDataPreprocessor) and pre.device.type == 'cpu'
    assert '_device_probe' not in pre.state_dict()
    holder = torch.nn.Module()
    holder.pre = pre
    holder.to('meta')  # any device change of the parent moves the preprocessor too
    assert pre.device.type == 'meta'
    sample = BaseDataElement(metainfo=dict(k=1), t=torch.ones(2))
    out = pre(dict(inputs=[torch.ones(1)], data_samples=[sample], name='keep'))
    assert out['inputs'][0].device.type == 'meta'
    assert out['data_samples'][0].t.device.type == 'meta' and out['data_samples'][0].k == 1
    assert out['name'] == 'keep'


def test_uint8_is_moved_before_float_conversion():
    seen = []

    class Spy(ImgDataPreprocessor):
        def cast_data(self, data):
            if isinstance(data, dict):
                seen.append(data['inputs'][0].dtype)
            return super().cast_data(data)

    Spy()(dict(inputs=[torch.zeros(3, 2, 2, dtype=torch.uint8)]))
    assert seen == [torch.uint8]
