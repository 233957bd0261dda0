import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from kiln.registry import VISBACKENDS
from kiln.visualization import LocalVisBackend, TensorboardVisBackend


def test_local_scalars_one_json_object_per_call(tmp_path):
    backend = VISBACKENDS.build(dict(type='LocalVisBackend', save_dir=tmp_path))
    assert isinstance(backend, LocalVisBackend)
    assert not any(tmp_path.iterdir())  # nothing written before the first call
    backend.add_scalars({'loss': torch.tensor(0.5), 'lr': 0.01, 'iter': np.int64(10)}, step=10)
    backend.add_scalars({'coco/bbox_mAP': 0.42}, step=20, file_path='val.json')
    backend.add_scalar('memory', 3, step=30)
    records = [json.loads(line) for line in (tmp_path / 'scalars.json').read_text().splitlines()]
    assert records == [{'loss': 0.5, 'lr': 0.01, 'iter': 10, 'step': 10},
                       {'coco/bbox_mAP': 0.42, 'step': 20},
                       {'memory': 3, 'step': 30}]
    assert json.loads((tmp_path / 'val.json').read_text()) == {'coco/bbox_mAP': 0.42, 'step': 20}
    with pytest.raises(TypeError, match="'obj'"):
        backend.add_scalars({'obj': object()})


def test_local_image_and_config(tmp_path):
    backend = LocalVisBackend(tmp_path, img_save_dir='imgs', config_save_file='cfg.py')
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    backend.add_image('pred', image, step=3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'imgs' / 'pred_3.png')), image)
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        backend.add_image('bad', image.astype(np.float32))

    class Cfg:
        pretty_text = "model = dict(type='FCOS')\n"

    backend.add_config(Cfg())
    assert (tmp_path / 'cfg.py').read_text() == "model = dict(type='FCOS')\n"
    backend.add_config({'a': 1})
    assert (tmp_path / 'cfg.py').read_text() == "{'a': 1}"
    backend.close()


def test_tensorboard_missing_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)  # simulate "not installed"
    backend = VISBACKENDS.build(dict(type='TensorboardVisBackend', save_dir=tmp_path))
    assert isinstance(backend, TensorboardVisBackend)  # building is free; the import is lazy
    with pytest.raises(ImportError, match='pip install tensorboard'):
        backend.add_scalar('loss', 1.0, step=1)
    backend.close()
