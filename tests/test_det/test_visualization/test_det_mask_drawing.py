"""Instance masks drawn by DetLocalVisualizer and DetVisualizationHook, on a real balloon image."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from kiln.det.engine.hooks import DetVisualizationHook
from kiln.det.engine.hooks.visualization_hook import gt_to_original_image
from kiln.det.structures import DetDataSample
from kiln.det.structures.mask import BitmapMasks, polygon_to_bitmap
from kiln.det.visualization import DetLocalVisualizer
from kiln.structures import InstanceData

BALLOON = Path(__file__).parents[3].parent / 'shared' / 'data' / 'balloon'
PALETTE = [(0, 0, 255)]

pytestmark = pytest.mark.skipif(not BALLOON.exists(), reason='shared balloon data not beside the repo')


@pytest.fixture(scope='module')
def balloon():
    """The smallest balloon val image (RGB array), its record-style instances and their decoded masks."""
    d = json.loads((BALLOON / 'annotations' / 'instances_val.json').read_text())
    info = min(d['images'], key=lambda i: i['width'] * i['height'])
    anns = [a for a in d['annotations'] if a['image_id'] == info['id']]
    image = np.asarray(Image.open(BALLOON / 'val' / info['file_name']).convert('RGB'))
    assert image.shape[:2] == (info['height'], info['width'])
    instances = [dict(bbox=[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]],
                      bbox_label=0, ignore_flag=0, mask=a['segmentation']) for a in anns]
    masks = np.stack([polygon_to_bitmap(i['mask'], info['height'], info['width']) for i in instances])
    return dict(info=info, image=image, instances=instances, masks=masks)


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(2 * px + 1))
    return np.asarray(img) > 0


def _visualizer(**kwargs) -> DetLocalVisualizer:
    vis = DetLocalVisualizer(alpha=0.5, line_width=2, **kwargs)
    vis.dataset_meta = dict(classes=('balloon',), palette=PALETTE)
    return vis


def test_masks_change_colour_inside_and_nothing_outside(balloon):
    image, masks, instances = balloon['image'], balloon['masks'], balloon['instances']
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([i['bbox'] for i in instances]),
                                       labels=torch.zeros(len(instances), dtype=torch.long),
                                       masks=torch.from_numpy(masks))
    vis = _visualizer()
    vis.add_datasample('balloon', image, sample, draw_pred=False)
    drawn = vis.get_image()
    assert drawn.shape == image.shape
    inside = _erode(masks.any(0), 4)
    for box in instances:  # leave out the label corner of each box
        x1, y1 = int(box['bbox'][0]), int(box['bbox'][1])
        inside[y1:y1 + 40, x1:x1 + 200] = False
    assert inside.sum() > 1000
    changed = np.abs(drawn.astype(int) - image.astype(int)).sum(-1) > 0
    assert changed[inside].mean() > 0.99
    # blended half-way towards the (jittered) blue palette colour: blue up, red down
    assert drawn[inside][:, 2].mean() > image[inside][:, 2].mean() + 40
    assert drawn[inside][:, 0].mean() < image[inside][:, 0].mean() - 20
    # outside every box (grown by the line width) and its label nothing is touched
    outside = np.ones(image.shape[:2], dtype=bool)
    for box in instances:
        x1, y1, x2, y2 = (int(v) for v in box['bbox'])
        outside[max(y1 - 4, 0):y2 + 5, max(x1 - 4, 0):x2 + 5] = False
        outside[max(y1 - 20, 0):y1 + 40, max(x1 - 20, 0):x1 + 200] = False
    np.testing.assert_array_equal(drawn[outside], image[outside])
    # the white contour: pixels on the mask boundary are brighter than the blended interior
    ring = masks[0] & ~_erode(masks[0], 1)
    assert drawn[ring].mean() > drawn[_erode(masks[0], 6)].mean() + 30


def test_mask_only_predictions_get_labels_and_sizes_are_checked(balloon):
    image, masks = balloon['image'], balloon['masks']
    sample = DetDataSample()
    sample.pred_instances = InstanceData(bboxes=torch.zeros(len(masks), 4), scores=torch.full((len(masks),), 0.9),
                                         labels=torch.zeros(len(masks), dtype=torch.long),
                                         masks=torch.from_numpy(masks))
    vis = _visualizer(mask_color=(0, 255, 0))
    vis.add_datasample('pred', image, sample, draw_gt=False)
    drawn = vis.get_image()
    inside = _erode(masks[0], 4)
    assert drawn[inside][:, 1].mean() > image[inside][:, 1].mean() + 40  # mask_color overrides the palette
    # the label sits on the centre of the mask (dark text background), no box outline is drawn
    ys, xs = np.nonzero(masks[0])
    cy, cx = int(ys.mean()), int(xs.mean())
    dark = lambda a: (a.max(-1) < 50).mean()  # noqa: E731  (the label's black background)
    window = (slice(cy - 6, cy + 6), slice(cx - 25, cx + 25))
    assert dark(drawn[window]) > 0.3 and dark(image[window]) < 0.05
    sample.pred_instances.masks = torch.from_numpy(masks[:, ::2, ::2].copy())
    with pytest.raises(ValueError, match='pixel frame'):
        vis.add_datasample('pred', image, sample, draw_gt=False)


def test_hook_decodes_record_polygons_and_draws_both_panels(balloon, tmp_path):
    info, instances, masks = balloon['info'], balloon['instances'], balloon['masks']
    sample = DetDataSample(metainfo=dict(img_path=str(BALLOON / 'val' / info['file_name']), img_id=info['id'],
                                         ori_shape=(info['height'], info['width']), img_shape=(256, 256),
                                         scale_factor=(0.25, 0.25), instances=instances))
    sample.pred_instances = InstanceData(bboxes=torch.tensor([instances[0]['bbox']]), scores=torch.tensor([0.9]),
                                         labels=torch.tensor([0]), masks=torch.from_numpy(masks[:1]))
    orig = gt_to_original_image(sample)
    np.testing.assert_array_equal(orig.gt_instances.masks.numpy(), masks)

    vis = _visualizer()
    runner = SimpleNamespace(visualizer=vis, work_dir=str(tmp_path), timestamp='t', iter=0)
    hook = DetVisualizationHook(draw=True, test_out_dir='vis')
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, [sample])
    drawn = np.asarray(Image.open(tmp_path / 't' / 'vis' / (Path(info['file_name']).stem + '.png')))
    w = info['width']
    assert drawn.shape == (info['height'], 2 * w, 3)
    image = balloon['image']
    inside = _erode(masks[0], 4)
    x1, y1 = int(instances[0]['bbox'][0]), int(instances[0]['bbox'][1])
    inside[y1:y1 + 40, x1:x1 + 200] = False
    for panel in (drawn[:, :w], drawn[:, w:]):  # gt left, prediction right: both show the mask
        assert panel[inside][:, 2].mean() > image[inside][:, 2].mean() + 40


def test_hook_maps_transformed_bitmap_masks_back(balloon):
    info, masks = balloon['info'], balloon['masks']
    h, w = info['height'], info['width']
    small = BitmapMasks(masks.astype(np.uint8), h, w).resize((h // 2, w // 2)).flip('horizontal')
    sample = DetDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h // 2, w // 2), flip=True,
                                         flip_direction='horizontal', scale_factor=(0.5, 0.5)))
    sample.gt_instances = InstanceData(bboxes=torch.zeros(len(masks), 4), labels=torch.zeros(len(masks)).long(),
                                       masks=small)
    back = gt_to_original_image(sample).gt_instances.masks.numpy()
    assert back.shape == masks.shape
    iou = (back & masks).sum() / (back | masks).sum()
    assert iou > 0.95  # nearest-neighbour down- and up-sampling loses only the boundary
    sample.set_metainfo(dict(flip=False))  # a wrong flip flag puts the balloons elsewhere
    wrong = gt_to_original_image(sample).gt_instances.masks.numpy()
    assert (wrong & masks).sum() / (wrong | masks).sum() < 0.5
