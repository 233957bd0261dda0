"""Summarise a `make demo` run: the test metrics and a contact sheet of predictions.

Usage: ``python tools/demo_summary.py WORK_DIR``. Reads the newest run directory under ``WORK_DIR`` that has a
``predictions/`` folder (written by ``kiln test --show-dir predictions``), prints the metric line of its log and
tiles the first four prediction PNGs (ground truth left, predictions right in each) into
``WORK_DIR/predictions_grid.png``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def main(work_dir: str) -> int:
    root = Path(work_dir)
    runs = sorted(p.parent for p in root.glob('*/predictions') if p.is_dir())
    if not runs:
        print(f'no predictions/ folder under {root}: did `kiln test --show-dir predictions` run?')
        return 1
    run = runs[-1]
    for log in sorted(run.glob('*.log')):
        lines = [ln for ln in log.read_text().splitlines() if 'coco/bbox_mAP' in ln]
        if lines:
            print('test metrics:', lines[-1].split(' - INFO - ')[-1])
    pngs = sorted((run / 'predictions').glob('*.png'))[:4]
    if not pngs:
        print(f'no PNG in {run / "predictions"}')
        return 1
    tiles = [Image.open(p).convert('RGB') for p in pngs]
    w = max(t.width for t in tiles)
    h = max(t.height for t in tiles)
    cols = 2 if len(tiles) > 1 else 1
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new('RGB', (w * cols, h * rows), 'white')
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * w, (i // cols) * h))
    out = root / 'predictions_grid.png'
    sheet.save(out)
    print(f'{len(list((run / "predictions").glob("*.png")))} prediction images in {run / "predictions"}')
    print(f'contact sheet of {len(tiles)}: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'work_dirs/demo'))
