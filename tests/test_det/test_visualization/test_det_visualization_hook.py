from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs, RandomFlip, Resize
from kiln.det.engine.hooks import DetVisualizationHook
from kiln.det.engine.hooks.visualization_hook import gt_to_original_image
from kiln.det.visualization import DetLocalVisualizer
from kiln.registry import HOOKS
from kiln.structures import InstanceData

BCCD = Path(__file__).parents[3] / 'data' / 'bccd'
CLASSES = ('RBC', 'WBC', 'Platelets')


def _output(name: str, flip: bool = True):
    """A test-step output: packed real BCCD sample (resized + flipped) with a prediction added."""
    inst = [dict(bbox=[259.0, 176.0, 490.0, 375.0], bbox_label=1, ignore_flag=0),
            dict(bbox=[77.0, 335.0, 183.0, 434.0], bbox_label=0, ignore_flag=1)]
    r = dict(img_path=str(BCCD / 'JPEGImages' / f'{name}.jpg'), img_id=name, instances=inst)
    r = LoadAnnotations()(LoadImageFromFile()(r))
    r = RandomFlip(prob=1.0 if flip else 0.0)(Resize(scale=(320, 320))(r))
    sample = PackDetInputs()(r)['data_samples']
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[100., 100., 200., 200.]]),
                                         scores=torch.tensor([0.9]), labels=torch.tensor([0]))
    return sample


class _Recorder(DetLocalVisualizer):
    def __init__(self):
        super().__init__(line_width=2)
        self.calls = []
        self.dataset_meta = dict(classes=CLASSES)

    def add_image(self, name, image, step=0):
        self.calls.append((name, image.shape, step))


@pytest.mark.parametrize('keep_instances', [True, False])
def test_gt_is_mapped_back_to_the_original_image(keep_instances):
    sample = _output('BloodImage_00000')
    if not keep_instances:  # no original annotations: undo flip and resize
        sample.pop('instances')
    assert ('instances' in sample) == keep_instances
    assert sample.flip and sample.scale_factor == pytest.approx((0.5, 0.5))
    orig = gt_to_original_image(sample)
    torch.testing.assert_close(orig.gt_instances.bboxes, torch.tensor([[259., 176., 490., 375.]]))
    torch.testing.assert_close(orig.ignored_instances.bboxes, torch.tensor([[77., 335., 183., 434.]]))
    assert orig.gt_instances.labels.tolist() == [1]
    assert orig.pred_instances is sample.pred_instances
    assert sample.gt_instances.bboxes[0, 0] != 259  # the input sample is untouched


def test_mmdet_test_pipeline_order_annotations_after_resize():
    """MMDetection test pipelines run LoadAnnotations after Resize: gt stays in original coordinates."""
    r = dict(img_path=str(BCCD / 'JPEGImages' / 'BloodImage_00000.jpg'), img_id='BloodImage_00000',
             instances=[dict(bbox=[259.0, 176.0, 490.0, 375.0], bbox_label=1, ignore_flag=0)])
    r = LoadAnnotations()(Resize(scale=(320, 320))(LoadImageFromFile()(r)))
    sample = PackDetInputs()(r)['data_samples']
    orig = gt_to_original_image(sample)
    torch.testing.assert_close(orig.gt_instances.bboxes, torch.tensor([[259., 176., 490., 375.]]))


def test_test_iter_writes_one_png_per_image(tmp_path):
    runner = SimpleNamespace(visualizer=_Recorder(), work_dir=str(tmp_path), timestamp='20250101_120000', iter=0)
    hook = HOOKS.build(dict(type='DetVisualizationHook', draw=True, test_out_dir='vis'))
    hook.before_test(runner)
    outputs = [_output('BloodImage_00000'), _output('BloodImage_00001', flip=False)]
    hook.after_test_iter(runner, 0, None, outputs)
    out_dir = tmp_path / '20250101_120000' / 'vis'
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ['BloodImage_00000.png', 'BloodImage_00001.png']
    drawn = np.asarray(Image.open(out_dir / 'BloodImage_00000.png'))
    assert drawn.shape == (480, 1280, 3)  # original size, gt | prediction
    original = np.asarray(Image.open(BCCD / 'JPEGImages' / 'BloodImage_00000.jpg').convert('RGB'))
    # the gt box is drawn where the original annotation is (left edge x=259), not in resized/flipped coords
    assert np.abs(drawn[250:350, 259].astype(int) - original[250:350, 259]).mean() > 20
    assert runner.visualizer.calls == []  # files, not backends


def test_no_drawing_unless_draw_and_val_interval(tmp_path):
    runner = SimpleNamespace(visualizer=_Recorder(), work_dir=str(tmp_path), timestamp='t', iter=0)
    off = DetVisualizationHook(test_out_dir='vis')
    off.before_test(runner)
    off.after_test_iter(runner, 0, None, [_output('BloodImage_00000')])
    off.after_val_iter(runner, 0, None, [_output('BloodImage_00000')])
    assert not (tmp_path / 't').exists() and runner.visualizer.calls == []

    hook = DetVisualizationHook(draw=True, interval=3)
    runner.iter = 10
    for batch_idx in range(6):  # runner.iter + batch_idx = 10..15 -> 12 and 15
        hook.after_val_iter(runner, batch_idx, None, [_output('BloodImage_00000')])
    assert runner.visualizer.calls == [('val_img', (480, 1280, 3), 12), ('val_img', (480, 1280, 3), 15)]
    hook.after_test_iter(runner, 0, None, [_output('BloodImage_00001')])  # no test_out_dir: to the backends
    assert runner.visualizer.calls[-1] == ('test_img', (480, 1280, 3), 1)
    with pytest.raises(ValueError, match='interval'):
        DetVisualizationHook(interval=0)
