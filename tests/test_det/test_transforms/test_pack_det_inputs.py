from pathlib import Path

import numpy as np
import torch

from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs, RandomFlip
from kiln.det.structures import DetDataSample
from kiln.registry import TRANSFORMS

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
INSTANCES = [dict(bbox=[10, 20, 110, 220], bbox_label=1, ignore_flag=0),
             dict(bbox=[300, 40, 350, 90], bbox_label=2, ignore_flag=1),
             dict(bbox=[600, 400, 640, 480], bbox_label=0, ignore_flag=0)]


def _results() -> dict:
    r = dict(img_path=str(BCCD / 'JPEGImages' / 'BloodImage_00003.jpg'), img_id='BloodImage_00003',
             instances=[dict(i) for i in INSTANCES])
    return RandomFlip(prob=1.0)(LoadAnnotations()(LoadImageFromFile()(r)))


def test_pack_inputs_and_instances():
    results = _results()
    img = results['img'].copy()
    packed = TRANSFORMS.build(dict(type='PackDetInputs'))(results)
    inputs = packed['inputs']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 480, 640) and inputs.is_contiguous()
    assert torch.equal(inputs, torch.from_numpy(img).permute(2, 0, 1))  # BGR channel order kept
    sample = packed['data_samples']
    assert isinstance(sample, DetDataSample)
    gt, ignored = sample.gt_instances, sample.ignored_instances
    assert gt.bboxes.dtype == torch.float32 and gt.labels.dtype == torch.int64
    assert gt.labels.tolist() == [1, 0] and ignored.labels.tolist() == [2]
    assert gt.bboxes.tolist() == [[530, 20, 630, 220], [0, 400, 40, 480]]  # flipped boxes
    assert ignored.bboxes.tolist() == [[290, 40, 340, 90]]
    assert sample.img_id == 'BloodImage_00003' and sample.img_path.endswith('BloodImage_00003.jpg')
    assert sample.ori_shape == sample.img_shape == (480, 640)
    assert sample.flip is True and sample.flip_direction == 'horizontal'
    assert sample.instances == INSTANCES  # original annotations for CocoMetric
    assert 'scale_factor' not in sample  # absent keys are skipped


def test_custom_meta_keys_grayscale_and_no_annotations():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    packed = PackDetInputs(meta_keys=('img_id',))(dict(img=img, img_id=5, img_shape=(3, 4)))
    assert packed['inputs'].shape == (1, 3, 4)
    sample = packed['data_samples']
    assert sample.metainfo == dict(img_id=5)
    assert len(sample.gt_instances) == 0 and 'instances' not in sample
    # Non-contiguous (e.g. flipped) images come out contiguous.
    img3 = np.ascontiguousarray(np.random.RandomState(0).randint(0, 255, (5, 6, 3), dtype=np.uint8))[:, ::-1]
    out = PackDetInputs()(dict(img=img3))['inputs']
    assert out.is_contiguous() and torch.equal(out, torch.from_numpy(img3.copy()).permute(2, 0, 1))
