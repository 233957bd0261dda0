"""Time ``Config.fromfile`` on a 4-level ``_base_`` chain built on the repository's real base configs.

    .venv/bin/python benchmarks/bench_config.py [--repeat 50]

level1.py inherits the four files of configs/_base_ (model, dataset, schedule, runtime); level2..4
each inherit the previous level and override a few keys (dict merge, ``_delete_``,
``{{_base_.x}}`` references, ``_base_`` variable access).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in LEVELS.items():
            (Path(tmp) / name).write_text(text)
        top = Path(tmp) / 'level4.py'
        cfg = Config.fromfile(top)  # warm-up (first-use imports)
        assert cfg.model.backbone.depth == 101 and cfg.model.bbox_head.num_classes == 3
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            Config.fromfile(top)
            times.append((time.perf_counter() - start) * 1000)
    print(f'Config.fromfile, 4-level _base_ chain (+4 base files, 8 files): '
          f'median {statistics.median(times):.2f} ms, min {min(times):.2f} ms, '
          f'max {max(times):.2f} ms over {args.repeat} runs')


if __name__ == '__main__':
    main()
