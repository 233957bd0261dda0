"""TestTimeAug and DetTTAModel on real BCCD / balloon images with small randomly initialised detectors."""
import copy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kiln.config import Config
from kiln.dataset import Compose, pseudo_collate
from kiln.det.datasets.transforms import bbox_flip
from kiln.det.models.test_time_augs import DetTTAModel, flip_masks
from kiln.det.structures import DetDataSample
from kiln.registry import MODELS, TRANSFORMS, init_default_scope
from kiln.structures import InstanceData

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / 'shared'
BCCD_IMG = REPO / 'data' / 'bccd' / 'JPEGImages' / 'BloodImage_00000.jpg'
BALLOON_VAL = SHARED / 'data' / 'balloon' / 'val'
META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction')
CONFIGS = {
    'fcos': ('configs/fcos/fcos_r18-slim_fpn_bccd.py', (256, 192)),
    'retinanet': ('../shared/mmdet_refs/retinanet', (256, 192)),  # MMDetection's RetinaNet, shrunk (README)
    'faster_rcnn': ('configs/faster_rcnn/faster-rcnn_r18-slim_fpn_bccd.py', (256, 192)),
    'mask_rcnn': ('configs/mask_rcnn/mask-rcnn_r18-slim_fpn_balloon.py', (256, 256)),
}
NO_NMS = dict(nms=None, max_per_img=1000)  # merge = concatenate + sort: a one-view TTA must equal the model


def build(family: str):
    path, scale = CONFIGS[family]
    if not (REPO / path).exists():
        pytest.skip(f'{path} is absent')
    init_default_scope('kiln.det')
    if (REPO / path).is_dir():  # a shared MMDetection reference model: config.json
        sys.path.insert(0, str(REPO / path / '..'))
        try:
            import mmref_io
        finally:
            sys.path.pop(0)
        model_cfg = mmref_io.load_config(str(REPO / path))['model']
    else:
        model_cfg = Config.fromfile(str(REPO / path)).model
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(model_cfg)).eval(), scale


def load_image(family: str) -> dict:
    if family == 'mask_rcnn':
        photo = sorted(BALLOON_VAL.glob('*.jpg'))[0]
        img = cv2.imread(str(photo))
        img = cv2.resize(img, (320, int(round(img.shape[0] * 320 / img.shape[1]))), interpolation=cv2.INTER_AREA)
        return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_path=str(photo))
    return TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=str(BCCD_IMG)))


def predict(model, results: dict, scale) -> DetDataSample:
    pipeline = Compose([dict(type='Resize', scale=scale, keep_ratio=True),
                        dict(type='PackDetInputs', meta_keys=META_KEYS)])
    with torch.no_grad():
        return model.test_step(pseudo_collate([pipeline(copy.deepcopy(results))]))[0]


def predict_tta(model, results: dict, flips: list, scale, tta_cfg=NO_NMS) -> DetDataSample:
    tta = DetTTAModel(module=model, tta_cfg=tta_cfg).eval()
    aug = TRANSFORMS.build(dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=scale, keep_ratio=True)],
        [dict(type='RandomFlip', prob=1., direction=d) if d else dict(type='RandomFlip', prob=0.) for d in flips],
        [dict(type='PackDetInputs', meta_keys=META_KEYS)]]))
    with torch.no_grad():
        return tta.test_step(pseudo_collate([aug(copy.deepcopy(results))]))[0]


def canonical(inst: InstanceData) -> dict:
    """Instances sorted by (score, box, label): compare predictions whatever the order of score ties."""
    boxes, scores, labels = inst.bboxes.numpy(), inst.scores.numpy(), inst.labels.numpy()
    order = np.lexsort((labels, boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    out = dict(bboxes=boxes[order], scores=scores[order], labels=labels[order])
    if 'masks' in inst:
        out['masks'] = inst.masks.numpy()[order]
    return out


def assert_same(a: InstanceData, b: InstanceData, atol: float = 1e-3) -> None:
    ca, cb = canonical(a), canonical(b)
    assert len(ca['scores']) == len(cb['scores']) > 0
    np.testing.assert_allclose(ca['bboxes'], cb['bboxes'], atol=atol)
    np.testing.assert_allclose(ca['scores'], cb['scores'], atol=1e-5)
    np.testing.assert_array_equal(ca['labels'], cb['labels'])
    if 'masks' in ca:
        assert (ca['masks'] != cb['masks']).mean() < 1e-3


def test_test_time_aug_cartesian_product():
    results = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=str(BCCD_IMG)))
    aug = TRANSFORMS.build(dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(320, 240), keep_ratio=True), dict(type='Resize', scale=(640, 480),
                                                                      keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='PackDetInputs', meta_keys=META_KEYS)]]))
    assert len(aug) == 4
    views = aug(results)
    assert sorted(views) == ['data_samples', 'inputs'] and len(views['inputs']) == 4
    shapes = [tuple(t.shape) for t in views['inputs']]
    assert shapes == [(3, 240, 320), (3, 240, 320), (3, 480, 640), (3, 480, 640)]
    assert [ds.flip for ds in views['data_samples']] == [True, False, True, False]
    np.testing.assert_array_equal(views['inputs'][2].numpy(), views['inputs'][3].numpy()[:, :, ::-1])
    assert results['img'].shape == (480, 640, 3)  # the input dict is not modified
    with pytest.raises(ValueError, match=r'transforms\[1\] is empty'):
        TRANSFORMS.build(dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=0.)], []]))
    with pytest.raises(TypeError, match=r'transforms\[0\]'):
        TRANSFORMS.build(dict(type='TestTimeAug', transforms=[dict(type='RandomFlip', prob=0.)]))


@pytest.mark.parametrize('family', list(CONFIGS))
def test_identity_view_equals_model_and_flip_view_maps_back(family):
    """One unflipped view == the plain model; a horizontally flipped view, flipped back, == the flip of the
    model's prediction on the flipped image (boxes and, for Mask R-CNN, masks)."""
    model, scale = build(family)
    results = load_image(family)
    plain = predict(model, results, scale).pred_instances
    assert_same(predict_tta(model, results, [None], scale).pred_instances, plain)

    flipped = copy.deepcopy(results)
    flipped['img'] = np.ascontiguousarray(results['img'][:, ::-1])
    on_flipped = predict(model, flipped, scale).pred_instances
    expected = InstanceData(bboxes=bbox_flip(on_flipped.bboxes, results['ori_shape'], 'horizontal'),
                            scores=on_flipped.scores, labels=on_flipped.labels)
    if 'masks' in on_flipped:
        expected.masks = flip_masks(on_flipped.masks, 'horizontal')
    merged = predict_tta(model, results, ['horizontal'], scale)
    assert merged.flip is True  # metainfo of the first view
    assert_same(merged.pred_instances, expected)


def test_merge_two_views_by_nms():
    """Hand-made views: a box found in the plain view and (mirrored) in a flipped view is kept once, with the
    higher score; masks follow their boxes and are flipped back; max_per_img caps the result."""
    h, w = 40, 100
    box = torch.tensor([[10., 5., 30., 25.]])
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[0, 5:25, 10:30] = True
    other = torch.tensor([[60., 10., 90., 30.]])
    other_mask = torch.zeros(1, h, w, dtype=torch.bool)
    other_mask[0, 10:30, 60:90] = True

    def sample(boxes, scores, labels, masks, flip):
        ds = DetDataSample(metainfo=dict(ori_shape=(h, w), flip=flip, flip_direction='horizontal' if flip else None))
        ds.pred_instances = InstanceData(bboxes=boxes, scores=torch.tensor(scores), labels=torch.tensor(labels),
                                         scores_per_class=torch.tensor([[s, 0.] for s in scores]), masks=masks)
        return ds

    view0 = sample(torch.cat([box, other]), [0.9, 0.4], [0, 1], torch.cat([mask, other_mask]), False)
    view1 = sample(bbox_flip(box, (h, w), 'horizontal'), [0.8], [0], flip_masks(mask, 'horizontal'), True)
    tta = DetTTAModel(module=torch.nn.Linear(1, 1), tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                                                 max_per_img=100))
    merged = tta.merge_preds([[view0, view1]])[0].pred_instances
    torch.testing.assert_close(merged.bboxes, torch.cat([box, other]))
    torch.testing.assert_close(merged.scores, torch.tensor([0.9, 0.4]))
    assert merged.labels.tolist() == [0, 1] and merged.scores_per_class.shape == (2, 2)
    assert torch.equal(merged.masks, torch.cat([mask, other_mask]))
    # the flipped view alone, mapped back, lands on the original box and mask
    alone = tta.merge_preds([[copy.deepcopy(view1)]])[0].pred_instances
    torch.testing.assert_close(alone.bboxes, box)
    assert torch.equal(alone.masks, mask)
    capped = DetTTAModel(module=torch.nn.Linear(1, 1), tta_cfg=dict(nms=None, max_per_img=2))
    assert len(capped.merge_preds([[copy.deepcopy(view0), copy.deepcopy(view1)]])[0].pred_instances) == 2
    with pytest.raises(KeyError, match='max_per_img'):
        DetTTAModel(module=torch.nn.Linear(1, 1), tta_cfg=dict(nms=None))


def test_detector_checkpoint_loads_into_tta_model():
    model, _ = build('fcos')
    from kiln.checkpoint import load_state_dict
    tta = DetTTAModel(module=copy.deepcopy(model), tta_cfg=NO_NMS)
    assert list(tta.state_dict()) == ['module.' + k for k in model.state_dict()]
    with torch.no_grad():
        for p in tta.module.parameters():
            p.zero_()
    load_state_dict(tta, model.state_dict(), strict=True)
    for (k, a), b in zip(tta.module.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


def test_kiln_test_tta_cli(tmp_path, capsys, monkeypatch):
    """`kiln test --tta` swaps in tta_model / tta_pipeline and evaluates (2 BCCD test images, random weights)."""
    from kiln.cli.main import main
    model, _ = build('fcos')
    ckpt = tmp_path / 'fcos.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), ckpt)
    cfg = tmp_path / 'tta_cfg.py'
    cfg.write_text(
        f"_base_ = '{REPO / 'configs/fcos/fcos_r18-slim_fpn_bccd.py'}'\n"
        "tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[\n"
        "    [dict(type='Resize', scale=(256, 192), keep_ratio=True)],\n"
        "    [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],\n"
        "    [dict(type='LoadAnnotations', with_bbox=True)],\n"
        f"    [dict(type='PackDetInputs', meta_keys={META_KEYS!r})]])]\n"
        "test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root='{REPO / 'data/bccd'}/', indices=2))\nlog_level = 'WARNING'\n")
    monkeypatch.chdir(tmp_path)
    assert main(['test', str(cfg), str(ckpt), '--tta', '--work-dir', str(tmp_path / 'work')]) == 0
    assert '"coco/bbox_mAP"' in capsys.readouterr().out
    no_tta = tmp_path / 'no_tta.py'
    no_tta.write_text(f"_base_ = '{REPO / 'configs/_base_/default_runtime.py'}'\nmodel = dict(type='FCOS')\n")
    assert main(['test', str(no_tta), str(ckpt), '--tta']) == 2
    assert '--tta needs tta_model and tta_pipeline' in capsys.readouterr().err
