"""Time ``Config.fromfile`` on 4-level inheritance chains built on the repository's real base configs.

    .venv/bin/python benchmarks/bench_config.py [--repeat 50]

``_base_`` chain: level1.py inherits the four files of configs/_base_ (model, dataset, schedule,
runtime); level2..4 each inherit the previous level and override a few keys (dict merge,
``_delete_``, ``{{_base_.x}}`` references, ``_base_`` variable access).

Pure-Python chain: the same four real base files imported with ``with read_base():`` (absolute
``mmdet.configs._base_...`` module paths), then three levels of relative ``from .pyN import *``
with lazy imports (``from torch.optim import SGD``) and ``.update()`` overrides.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiln.config import Config  # noqa: E402

BASES = ROOT / 'configs' / '_base_'
LEVELS = {
    'level1.py': f"""_base_ = [
    '{BASES / 'models' / 'fcos_r50_fpn.py'}', '{BASES / 'datasets' / 'bccd_detection.py'}',
    '{BASES / 'schedules' / 'schedule_1x.py'}', '{BASES / 'default_runtime.py'}']
model = dict(bbox_head=dict(num_classes=3))
""",
    'level2.py': """_base_ = 'level1.py'
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
train_dataloader = dict(batch_size=2)
""",
    'level3.py': """_base_ = ['level2.py']
train_cfg = dict(max_epochs=24)
work_dir = './work_dirs/{{fileBasenameNoExtension}}'
head = {{_base_.model.bbox_head}}
""",
    'level4.py': """_base_ = 'level3.py'
backbone = _base_.model.backbone
backbone.depth = 101
model = dict(backbone=backbone)
""",
}


PURE_LEVELS = {
    'py1.py': """from mmengine.config import read_base
with read_base():
    from mmdet.configs._base_.models.fcos_r50_fpn import *
    from mmdet.configs._base_.datasets.bccd_detection import *
    from mmdet.configs._base_.schedules.schedule_1x import *
    from mmdet.configs._base_.default_runtime import *
model.bbox_head.num_classes = 3
""",
    'py2.py': """from mmengine.config import read_base
with read_base():
    from .py1 import *
from torch.optim import SGD
optim_wrapper.update(dict(optimizer=dict(_delete_=True, type=SGD, lr=0.01)))
train_dataloader.batch_size = 2
""",
    'py3.py': """from mmengine.config import read_base
with read_base():
    from .py2 import *
train_cfg.max_epochs = 24
work_dir = './work_dirs/{{fileBasenameNoExtension}}'
""",
    'py4.py': """from mmengine.config import read_base
with read_base():
    from .py3 import *
from torch.nn import ReLU
model.update(dict(backbone=dict(depth=101), neck=dict(act_cfg=dict(type=ReLU))))
""",
}


def _time(top: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        Config.fromfile(top)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _report(label: str, times: list[float]) -> None:
    print(f'{label}: median {statistics.median(times):.2f} ms, min {min(times):.2f} ms, '
          f'max {max(times):.2f} ms over {len(times)} runs')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in {**LEVELS, **PURE_LEVELS}.items():
            (Path(tmp) / name).write_text(text)
        top = Path(tmp) / 'level4.py'
        cfg = Config.fromfile(top)  # warm-up (first-use imports)
        assert cfg.model.backbone.depth == 101 and cfg.model.bbox_head.num_classes == 3
        _report('Config.fromfile, 4-level _base_ chain (+4 base files, 8 files)',
                _time(top, args.repeat))
        pure = Path(tmp) / 'py4.py'
        cfg = Config.fromfile(pure)
        assert cfg.model.backbone.depth == 101 and cfg.train_cfg.max_epochs == 24
        assert 'torch' not in sys.modules, 'reading a pure-Python config must not import torch'
        _report('Config.fromfile, 4-level pure-Python read_base chain (+4 base files, 8 files)',
                _time(pure, args.repeat))

if __name__ == '__main__':
    main()
