"""Instance masks through the data pipeline on real COCO-format data (balloon, coco128 segmentation):
LoadAnnotations(with_mask) -> Resize -> RandomFlip -> PackDetInputs keeps masks consistent with the boxes."""
from functools import lru_cache
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from pycocotools.coco import COCO

from kiln.det.datasets import CocoDataset
from kiln.det.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs, RandomFlip, Resize
from kiln.det.structures.mask import BitmapMasks, PolygonMasks
from kiln.registry import TRANSFORMS

SHARED = Path(__file__).parents[3].parent / 'shared' / 'data'
BALLOON = SHARED / 'balloon'
COCO128 = SHARED / 'coco128'
pytestmark = pytest.mark.skipif(not (BALLOON.is_dir() and COCO128.is_dir()),
                                reason='shared balloon / coco128 data not beside the repo')


@lru_cache(maxsize=None)
def _balloon() -> CocoDataset:
    return CocoDataset(data_root=str(BALLOON), ann_file='annotations/instances_train.json',
                       data_prefix=dict(img='train/'), metainfo=dict(classes=('balloon',)), pipeline=[])


@lru_cache(maxsize=None)
def _coco128() -> CocoDataset:
    return CocoDataset(data_root=str(COCO128), ann_file='annotations/instances_seg_train2017.json',
                       data_prefix=dict(img='images/train2017/'), pipeline=[])


def _record(ds: CocoDataset, img_id: int) -> dict:
    index = next(i for i in range(len(ds)) if ds.get_data_info(i)['img_id'] == img_id)
    return ds.get_data_info(index)


def _loaded(img_id: int = 60, poly2mask: bool = True) -> dict:
    """A 1024x679 balloon image with 28 balloons, read and annotated."""
    return LoadAnnotations(with_mask=True, poly2mask=poly2mask)(LoadImageFromFile()(_record(_balloon(), img_id)))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(bool), b.astype(bool)
    union = (a | b).sum((1, 2))
    return np.where(union > 0, (a & b).sum((1, 2)) / np.maximum(union, 1), 1.0)


def test_load_masks_matches_pycocotools_on_coco128():
    ds = _coco128()
    coco = COCO(str(COCO128 / 'annotations' / 'instances_seg_train2017.json'))
    checked = 0
    for i in range(10):
        record = ds.get_data_info(i)
        record['ori_shape'] = (record['height'], record['width'])
        out = LoadAnnotations(with_mask=True)(record)
        masks = out['gt_masks']
        anns = [a for a in coco.imgToAnns[record['img_id']] if a['bbox'][2] >= 1 and a['bbox'][3] >= 1]
        assert isinstance(masks, BitmapMasks) and len(masks) == len(out['gt_bboxes']) == len(anns)
        assert masks.masks.dtype == np.uint8 and (masks.height, masks.width) == record['ori_shape']
        for k, a in enumerate(anns):
            np.testing.assert_array_equal(masks.masks[k], coco.annToMask(a))
            checked += 1
        # the mask's box is the annotated box (YOLO-seg polygons and boxes of the same objects)
        if len(masks):
            assert np.abs(masks.get_bboxes().numpy() - out['gt_bboxes']).max() <= 7
    assert checked >= 25


def test_rle_masks_decode_like_pycocotools():
    record = _record(_balloon(), 60)
    h, w = record['height'], record['width']
    polys = [inst['mask'] for inst in record['instances']]
    expected = np.stack([mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(p, h, w))) for p in polys])
    # uncompressed RLE: run lengths of the column-major (Fortran) pixel order, starting with background
    uncompressed = []
    for m in expected:
        flat = m.ravel(order='F')
        change = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
        uncompressed.append(dict(size=[h, w], counts=([0] + runs) if flat[0] else runs))
    compressed = [mask_utils.encode(np.asfortranarray(m)) for m in expected]
    as_str = [dict(size=c['size'], counts=c['counts'].decode('ascii')) for c in compressed]
    for masks in (uncompressed, compressed, as_str):
        rec = dict(record, ori_shape=(h, w),
                   instances=[dict(inst, mask=m) for inst, m in zip(record['instances'], masks)])
        out = LoadAnnotations(with_mask=True)(rec)
        np.testing.assert_array_equal(out['gt_masks'].masks, expected)
        assert not out['gt_ignore_flags'].any()
    # RLE cannot become polygons: those instances are ignored, as in MMDetection
    rec = dict(record, ori_shape=(h, w), instances=[dict(record['instances'][0], mask=compressed[0])])
    out = LoadAnnotations(with_mask=True, poly2mask=False)(rec)
    assert isinstance(out['gt_masks'], PolygonMasks) and out['gt_ignore_flags'].tolist() == [True]
    bad = dict(rec, instances=[dict(record['instances'][0], mask=dict(size=[h + 1, w], counts=[h * w]))])
    with pytest.raises(ValueError, match='size'):
        LoadAnnotations(with_mask=True)(bad)


def test_invalid_polygons_become_ignored_instances():
    box = dict(bbox=[10, 10, 40, 40], bbox_label=0, ignore_flag=0)
    square = [10, 10, 40, 10, 40, 40, 10, 40]
    record = dict(img_path='x.jpg', ori_shape=(50, 60), instances=[
        dict(box, mask=[square]),
        dict(box, mask=[[10, 10, 40, 40]]),              # 2 points: not a polygon
        dict(box, mask=[[10, 10, 40, 40], square, [1, 2, 3]]),  # invalid parts dropped, the square kept
        dict(box, mask=[]),
        dict(box, mask=dict(foo=1)),                      # a dict without counts / size
    ])
    for poly2mask in (True, False):
        out = LoadAnnotations(with_mask=True, poly2mask=poly2mask)(dict(record))
        assert out['gt_ignore_flags'].tolist() == [False, True, False, True, True]
        dense = out['gt_masks'].to_ndarray().astype(bool)
        assert dense.shape == (5, 50, 60)
        assert dense[0].sum() == 900 and (dense[2] == dense[0]).all() and not dense[[1, 3, 4]].any()
    assert record['instances'][1]['ignore_flag'] == 0  # the record is not modified
    with pytest.raises(KeyError, match='instance 0 of x.jpg has no "mask"'):
        LoadAnnotations(with_mask=True)(dict(record, instances=[box]))
    with pytest.raises(KeyError, match='image size'):
        LoadAnnotations(with_mask=True)(dict(img_path='x.jpg', instances=[dict(box, mask=[square])]))
    empty = LoadAnnotations(with_mask=True)(dict(img_path='x.jpg', ori_shape=(5, 6), instances=[]))
    assert len(empty['gt_masks']) == 0 and empty['gt_masks'].masks.shape == (0, 5, 6)


@pytest.mark.parametrize('keep_ratio', [True, False])
def test_resize_keeps_masks_on_boxes(keep_ratio):
    results = _loaded()
    boxes0, areas0 = results['gt_bboxes'].copy(), results['gt_masks'].areas.astype(np.float64)
    transform = Resize(scale=(512, 400), keep_ratio=keep_ratio)
    out = transform(results)
    masks = out['gt_masks']
    assert out['img'].shape[:2] == out['img_shape'] == (masks.height, masks.width)
    w_scale, h_scale = out['scale_factor']
    assert out['img_shape'] == ((340, 512) if keep_ratio else (400, 512))
    # areas scale with the resize factors, mask boxes follow the resized boxes
    big = areas0 > 5000
    np.testing.assert_allclose(masks.areas[big], areas0[big] * w_scale * h_scale, rtol=0.05)
    diff = np.abs(masks.get_bboxes().numpy() - out['gt_bboxes'])
    np.testing.assert_allclose(out['gt_bboxes'], boxes0 * [w_scale, h_scale, w_scale, h_scale], atol=1e-3)
    assert diff.max() <= 3 and np.median(diff) <= 1


def test_flip_masks_equal_np_flip_and_follow_boxes():
    results = Resize(scale=(512, 400))(_loaded())
    before = results['gt_masks'].masks.copy()
    for direction, axes in (('horizontal', (2,)), ('vertical', (1,)), ('diagonal', (1, 2))):
        out = RandomFlip(prob=1.0, direction=direction)(dict(results, gt_masks=BitmapMasks(
            before.copy(), *before.shape[1:])))
        np.testing.assert_array_equal(out['gt_masks'].masks, np.flip(before, axis=axes))
        diff = np.abs(out['gt_masks'].get_bboxes().numpy() - out['gt_bboxes'])
        assert diff.max() <= 3 and np.median(diff) <= 1
    unflipped = RandomFlip(prob=0.0)(dict(results))
    assert unflipped['gt_masks'] is results['gt_masks']


def test_polygon_and_bitmap_pipelines_agree_and_pack():
    pipeline = [dict(type='Resize', scale=(640, 480), keep_ratio=True),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                dict(type='PackDetInputs')]
    transforms = [TRANSFORMS.build(cfg) for cfg in pipeline]
    results = {}
    for poly2mask in (True, False):
        r = _loaded(poly2mask=poly2mask)
        r['gt_ignore_flags'][[3, 10]] = True  # pretend two balloons are crowd annotations
        for t in transforms:
            r = t(r)
        results[poly2mask] = r
    gt_b = results[True]['data_samples'].gt_instances
    gt_p = results[False]['data_samples'].gt_instances
    assert isinstance(gt_b.masks, BitmapMasks) and isinstance(gt_p.masks, PolygonMasks)
    assert len(gt_b) == len(gt_b.masks) == len(gt_p.masks) == 26
    ignored = results[True]['data_samples'].ignored_instances
    assert len(ignored.masks) == len(ignored.bboxes) == 2
    assert results[True]['inputs'].shape[1:] == (gt_b.masks.height, gt_b.masks.width) == (424, 640)
    dense_b, dense_p = gt_b.masks.to_ndarray(), gt_p.masks.to_ndarray()
    big = dense_b.astype(bool).sum((1, 2)) > 3000
    assert big.sum() >= 10
    iou = _iou(dense_b, dense_p)[big]
    assert iou.mean() > 0.955 and iou.min() > 0.93, iou
    # boxes packed beside the masks still describe them
    diff = np.abs(gt_b.masks.get_bboxes().numpy() - gt_b.bboxes.numpy())
    assert diff.max() <= 4 and np.median(diff) <= 1
    # InstanceData indexing carries the masks along
    sub = gt_b[gt_b.bboxes[:, 0] > 320]
    assert 0 < len(sub.masks) == len(sub) < 26


def test_pack_without_flags_and_repr():
    r = PackDetInputs()(dict(img=np.zeros((5, 6, 3), np.uint8), gt_bboxes=np.zeros((2, 4), np.float32),
                             gt_bboxes_labels=np.zeros(2, np.int64),
                             gt_masks=BitmapMasks(np.ones((2, 5, 6), np.uint8), 5, 6)))
    assert isinstance(r['data_samples'].gt_instances.masks, BitmapMasks)
    assert len(r['data_samples'].gt_instances.masks) == 2
    with pytest.raises(ValueError, match='gt_masks has 2 masks'):
        PackDetInputs()(dict(gt_masks=BitmapMasks(np.ones((2, 5, 6), np.uint8), 5, 6),
                             gt_ignore_flags=np.zeros(3, bool)))
    assert 'poly2mask=False' in repr(LoadAnnotations(with_mask=True, poly2mask=False))



def test_pad_pads_image_and_masks():
    results = Resize(scale=(500, 400))(_loaded())
    h, w = results['img_shape']
    before = results['gt_masks'].masks.copy()
    out = TRANSFORMS.build(dict(type='Pad', size_divisor=32, pad_val=dict(img=114, masks=0)))(results)
    ph, pw = out['img_shape']
    assert (ph, pw) == out['pad_shape'] == (-(-h // 32) * 32, -(-w // 32) * 32) and (ph, pw) != (h, w)
    assert out['img'].shape[:2] == (ph, pw) and (out['img'][h:] == 114).all()
    np.testing.assert_array_equal(out['gt_masks'].masks[:, :h, :w], before)
    assert not out['gt_masks'].masks[:, h:].any() and not out['gt_masks'].masks[:, :, w:].any()
    square = TRANSFORMS.build(dict(type='Pad', pad_to_square=True))(dict(img=np.zeros((5, 8, 3), np.uint8)))
    assert square['img'].shape == (8, 8, 3)
    with pytest.raises(ValueError, match='exactly one'):
        TRANSFORMS.build(dict(type='Pad'))


@pytest.mark.parametrize('poly2mask', [True, False])
def test_random_crop_keeps_masks_boxes_and_labels_together(poly2mask):
    crop = TRANSFORMS.build(dict(type='RandomCrop', crop_size=(300, 200)))
    results = Resize(scale=(640, 480))(_loaded(poly2mask=poly2mask))
    h, w = results['img_shape']
    full = results['gt_masks'].to_ndarray().astype(bool)
    boxes0 = results['gt_bboxes'].copy()
    for seed in range(20):
        np.random.seed(seed)
        y1, x1 = np.random.randint(0, h - 200 + 1), np.random.randint(0, w - 300 + 1)  # the window it draws
        np.random.seed(seed)
        out = crop(dict(results))
        if out is not None:
            break
    masks = out['gt_masks']
    assert out['img'].shape[:2] == out['img_shape'] == (masks.height, masks.width) == (200, 300)
    np.testing.assert_array_equal(out['img'], results['img'][y1:y1 + 200, x1:x1 + 300])
    # instances whose box meets the window survive, with their labels, flags and masks
    valid = (boxes0[:, 0] < x1 + 300) & (boxes0[:, 2] > x1) & (boxes0[:, 1] < y1 + 200) & (boxes0[:, 3] > y1)
    assert 0 < valid.sum() == len(out['gt_bboxes']) == len(masks) == len(out['gt_bboxes_labels'])
    assert len(out['gt_ignore_flags']) == valid.sum()
    dense = masks.to_ndarray().astype(bool)
    expected = full[valid][:, y1:y1 + 200, x1:x1 + 300]
    assert _iou(dense, expected).min() > (0.999 if poly2mask else 0.9)
    # boxes are shifted and clipped to the window; the masks stay inside them
    np.testing.assert_allclose(out['gt_bboxes'], np.clip(boxes0[valid] - [x1, y1, x1, y1], 0, [300, 200, 300, 200]))
    mb = masks.get_bboxes().numpy()
    nonempty = dense.any((1, 2))
    assert (mb[nonempty, :2] >= out['gt_bboxes'][nonempty, :2] - 3).all()
    assert (mb[nonempty, 2:] <= out['gt_bboxes'][nonempty, 2:] + 3).all()
    # a window with no box is refused unless negative crops are allowed
    empty = dict(results, gt_bboxes=np.array([[0, 0, 1, 1]], np.float32), gt_bboxes_labels=np.zeros(1, np.int64),
                 gt_ignore_flags=np.zeros(1, bool), gt_masks=results['gt_masks'][[0]])
    np.random.seed(0)
    refused = [TRANSFORMS.build(dict(type='RandomCrop', crop_size=(50, 50)))(dict(empty)) for _ in range(5)]
    assert any(r is None for r in refused)
    with pytest.raises(ValueError, match='crop_type'):
        TRANSFORMS.build(dict(type='RandomCrop', crop_size=(1, 1), crop_type='weird'))
