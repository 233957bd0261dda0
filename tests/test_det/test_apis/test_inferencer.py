"""DetInferencer / DetPredictor on real BCCD and balloon images with small randomly initialised detectors."""
import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kiln.checkpoint import publish_checkpoint
from kiln.config import Config
from kiln.dataset import Compose, pseudo_collate
from kiln.det import DetInferencer, DetPredictor
from kiln.registry import MODELS, init_default_scope

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / 'shared'
BCCD_IMGS = REPO / 'data' / 'bccd' / 'JPEGImages'
BALLOON_VAL = SHARED / 'data' / 'balloon' / 'val'
IMAGES = [str(BCCD_IMGS / 'BloodImage_00000.jpg'), str(BCCD_IMGS / 'BloodImage_00001.jpg')]
SMALL = (320, 240)  # test-time Resize scale: the network sees 320x240, predictions must be in 640x480 pixels


def small_config(path: str, scale: tuple) -> Config:
    """The config with its test Resize set to ``scale`` (fast on CPU)."""
    cfg = Config.fromfile(str(REPO / path))
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
    return cfg


def build_model(cfg: Config, seed: int = 0) -> torch.nn.Module:
    init_default_scope('kiln.det')
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg.model)).eval()


@pytest.fixture(scope='module')
def fcos(tmp_path_factory):
    """(config, model, checkpoint path): a kiln training-style checkpoint whose meta names the classes."""
    cfg = small_config('configs/fcos/fcos_r18-slim_fpn_bccd.py', SMALL)
    model = build_model(cfg)
    ckpt = tmp_path_factory.mktemp('fcos') / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1, dataset_meta=dict(classes=['red', 'white', 'platelet'])),
                    state_dict=model.state_dict(), optimizer={}), ckpt)
    return cfg, model, str(ckpt)


@pytest.fixture(scope='module')
def inferencer(fcos):
    cfg, _, ckpt = fcos
    return DetInferencer(cfg, ckpt, device='cpu')


def reference_predictions(cfg: Config, model: torch.nn.Module, paths: list) -> list:
    """model.test_step on the config's own test pipeline (annotations loaded, as in `kiln test`)."""
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    with torch.no_grad():
        return model.test_step(pseudo_collate([pipeline(dict(img_path=p, img_id=i, instances=[]))
                                               for i, p in enumerate(paths)]))


def test_matches_test_step_and_uses_checkpoint_meta(fcos, inferencer):
    cfg, model, _ = fcos
    result = inferencer(IMAGES, batch_size=2)
    refs = reference_predictions(cfg, model, IMAGES)
    assert inferencer.dataset_meta['classes'] == ('red', 'white', 'platelet')
    assert len(result['predictions']) == 2 and result['visualization'] == []
    for pred, ref in zip(result['predictions'], refs):
        inst = ref.pred_instances
        assert len(pred['bboxes']) == len(inst) > 0
        np.testing.assert_allclose(pred['bboxes'], inst.bboxes.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(pred['scores'], inst.scores.numpy(), rtol=0, atol=1e-6)
        assert pred['labels'] == inst.labels.tolist()
        np.testing.assert_allclose(pred['scores_per_class'], inst.scores_per_class.numpy(), atol=1e-6)
        assert pred['label_names'] == [('red', 'white', 'platelet')[i] for i in pred['labels']]
        boxes = np.asarray(pred['bboxes'])
        # original-image pixels (640x480), not the 320x240 network input
        assert boxes[:, [0, 2]].max() > SMALL[0] and boxes[:, [1, 3]].max() > SMALL[1]
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 640 and boxes[:, [1, 3]].max() <= 480


def test_array_input_equals_path_input_and_predictor(fcos, inferencer):
    _, _, ckpt = fcos
    img = cv2.imread(IMAGES[0])
    from_path = inferencer(IMAGES[0])['predictions'][0]
    from_array = inferencer(img)['predictions'][0]
    assert from_array == from_path
    predictor = DetPredictor(inferencer.cfg, ckpt, device='cpu')
    sample = predictor(img)
    np.testing.assert_allclose(sample.pred_instances.bboxes.numpy(), from_path['bboxes'], atol=1e-4)
    assert sample.ori_shape == (480, 640)
    with pytest.raises(TypeError, match='BGR uint8'):
        predictor(IMAGES[0])
    with pytest.raises(ValueError, match=r'\(H, W, 3\) BGR uint8'):
        inferencer(img.astype(np.float32))
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inferencer('nope.jpg')


def test_out_dir_folder_and_visualization(inferencer, tmp_path):
    folder = tmp_path / 'imgs'
    (folder / 'sub').mkdir(parents=True)
    for i, src in enumerate(IMAGES):
        (folder / ('sub' if i else '') / Path(src).name).write_bytes(Path(src).read_bytes())
    (folder / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    result = inferencer(str(folder), out_dir=str(out), no_save_pred=False, return_vis=True, pred_score_thr=0.0)
    assert sorted(p.name for p in (out / 'preds').iterdir()) == ['BloodImage_00000.json', 'BloodImage_00001.json']
    assert sorted(p.name for p in (out / 'vis').iterdir()) == ['BloodImage_00000.png', 'BloodImage_00001.png']
    saved = json.loads((out / 'preds' / 'BloodImage_00000.json').read_text())
    assert saved == json.loads(json.dumps(result['predictions'][0]))
    drawing = result['visualization'][0]
    assert drawing.shape == (480, 640, 3) and drawing.dtype == np.uint8
    on_disk = cv2.imread(str(out / 'vis' / 'BloodImage_00000.png'))[..., ::-1]
    np.testing.assert_array_equal(on_disk, drawing)
    plain = cv2.imread(IMAGES[0])[..., ::-1]
    assert (drawing != plain).any(axis=2).mean() > 0.001  # boxes were drawn


def test_weight_formats(fcos, tmp_path):
    """Published .safetensors, MMDetection-style {'state_dict', 'meta'} and a bare state dict give the same
    predictions; classes come from the checkpoint meta, else from the config."""
    cfg, model, ckpt = fcos
    expected = DetInferencer(cfg, ckpt, device='cpu')(IMAGES[0])['predictions'][0]
    published = publish_checkpoint(ckpt, str(tmp_path / 'fcos.safetensors'))
    mmdet = tmp_path / 'mmdet.pth'
    torch.save(dict(meta=dict(mmdet_version='3.3.0', dataset_meta=dict(classes=('A', 'B', 'C'))),
                    state_dict=model.state_dict()), mmdet)
    bare = tmp_path / 'bare.pth'
    torch.save(model.state_dict(), bare)
    for path, classes in ((published, ('red', 'white', 'platelet')), (mmdet, ('A', 'B', 'C')),
                          (bare, ('RBC', 'WBC', 'Platelets'))):
        inf = DetInferencer(cfg, path, device='cpu')
        assert inf.dataset_meta['classes'] == classes
        pred = inf(IMAGES[0])['predictions'][0]
        np.testing.assert_allclose(pred['bboxes'], expected['bboxes'], atol=1e-4)
        assert pred['labels'] == expected['labels']


def test_mask_rcnn_rle_decodes_to_predicted_masks(tmp_path):
    from pycocotools import mask as mask_util
    cfg = small_config('configs/mask_rcnn/mask-rcnn_r18-slim_fpn_balloon.py', (256, 256))
    model = build_model(cfg, seed=1)
    ckpt = tmp_path / 'mrcnn.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('balloon',))), state_dict=model.state_dict()), ckpt)
    photo = sorted(BALLOON_VAL.glob('*.jpg'))[0]
    img = cv2.imread(str(photo))
    img = cv2.resize(img, (400, int(round(img.shape[0] * 400 / img.shape[1]))), interpolation=cv2.INTER_AREA)
    inf = DetInferencer(cfg, ckpt, device='cpu')
    samples = inf(img, return_datasamples=True)['predictions']
    pred = inf(img, out_dir=str(tmp_path / 'out'), no_save_pred=False)['predictions'][0]
    masks = samples[0].pred_instances.masks.numpy()
    assert masks.shape[1:] == img.shape[:2] and len(pred['masks']) == len(masks) > 0
    saved = json.loads((tmp_path / 'out' / 'preds' / '00000000.json').read_text())
    assert saved['label_names'] == ['balloon'] * len(masks)
    for rle, mask in zip(saved['masks'], masks):
        decoded = mask_util.decode(dict(size=rle['size'], counts=rle['counts'].encode()))
        np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_fuse_conv_bn_option(fcos, inferencer):
    """BatchNorm folding (default on) gives the predictions of the unfolded model within float32 rounding."""
    cfg, _, ckpt = fcos
    plain = DetInferencer(cfg, ckpt, device='cpu', fuse_conv_bn=False)
    assert all(m.fold_bn for m in inferencer.model.modules() if hasattr(m, 'fold_bn'))
    assert not any(m.fold_bn for m in plain.model.modules() if hasattr(m, 'fold_bn'))
    a, b = inferencer(IMAGES[0])['predictions'][0], plain(IMAGES[0])['predictions'][0]
    assert a['labels'] == b['labels']
    np.testing.assert_allclose(a['bboxes'], b['bboxes'], atol=1e-3, rtol=0)
    np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-4, rtol=0)
    assert list(inferencer.model.state_dict()) == list(plain.model.state_dict())
