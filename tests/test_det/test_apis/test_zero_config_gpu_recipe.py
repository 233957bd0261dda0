"""The CUDA recipe of zero-config training, built as a config on any machine (``device='cuda'``): standard
ResNet-50 FPN bases with ImageNet backbone weights, MMDetection's 1333x800 scale and 1x schedule shape, at
least 12 epochs / 3000 iterations, ``auto_scale_lr`` on, every ``num_classes`` set."""
from __future__ import annotations

from pathlib import Path

import pytest

from kiln.det.apis.zero_config import build_zero_config

SHARED = Path(__file__).resolve().parents[3].parent / 'shared' / 'data'
BCCD, BALLOON = SHARED / 'bccd', SHARED / 'balloon'
pytestmark = pytest.mark.skipif(not (BCCD.is_dir() and BALLOON.is_dir()), reason='shared data not beside the repo')


@pytest.mark.parametrize('model, data, heads', [
    ('atss', BCCD, ['bbox_head']),
    ('fcos', BCCD, ['bbox_head']),
    ('retinanet', BCCD, ['bbox_head']),
    ('faster-rcnn', BCCD, ['roi_head.bbox_head']),
    ('mask-rcnn', BALLOON, ['roi_head.bbox_head', 'roi_head.mask_head']),
])
def test_cuda_recipe_uses_the_standard_r50_bases_with_imagenet_weights(tmp_path, model, data, heads):
    cfg, info = build_zero_config(str(data), model=model, device='cuda', work_dir=str(tmp_path))
    assert info['device'] == 'cuda' and info['recipe'].startswith('mmdet::_base_/models/') and 'r50' in info['recipe']
    assert cfg.model.backbone.depth == 50
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    n_classes = len(info['classes'])
    for head in heads:
        node = cfg.model
        for part in head.split('.'):
            node = node[part]
        assert node.num_classes == n_classes
    assert info['img_size'] == (1333, 800)
    assert {'type': 'Resize', 'scale': (1333, 800), 'keep_ratio': True} in cfg.train_dataloader.dataset.pipeline
    assert info['epochs'] >= 12 and info['epochs'] * info['iters_per_epoch'] >= 3000 or info['epochs'] == 100
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16) and cfg.train_dataloader.batch_size == 2
    e = info['epochs']
    assert cfg.param_scheduler[1].milestones == [max(1, round(e * 8 / 12)), max(1, round(e * 11 / 12))]
