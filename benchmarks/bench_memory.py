"""Peak resident memory of training an R50-FPN detector at batch 2 of 512x512: kiln next to torchvision.

For each family (RetinaNet, FCOS, Faster R-CNN, Mask R-CNN; random init, 80 classes) and each side (kiln from
``configs/_base_/models``, torchvision's ``*_resnet50_fpn``), a fresh Python process builds the model, takes the
same batch as ``benchmarks/bench_vs_torchvision.py`` (2 coco128 val images resized to 512x512 with boxes / labels /
masks; its helpers are imported, so the two benchmarks see the same data and the same models) and runs a few SGD
training steps. The process reports its resident set size (``VmRSS``) after the imports, after the model build
and after the steps, and its peak (``VmHWM``, the high-water mark; ``ru_maxrss`` where /proc is missing), in MiB.
One process per (side, family), so neither side's allocations leak into the other's peak.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_memory.py [--families retinanet fcos faster_rcnn mask_rcnn] [--steps 3]
        [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MARK = 'KILN_MEMORY_JSON '
FAMILIES = ('retinanet', 'fcos', 'faster_rcnn', 'mask_rcnn')
TARGET_MIB = 1.9 * 1024  # issue 14: peak RSS <= 1.9 GB (GiB-ish: 1946 MiB)


def _status(key: str) -> float:
    """``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in MiB; ``ru_maxrss`` without /proc."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(side: str, family: str, steps: int, threads: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    import bench_vs_torchvision as bv
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with_masks = family == 'mask_rcnn'
    items = bv.load_coco_images(2, (512, 512))
    if side == 'kiln':
        import kiln.det  # noqa: F401
    else:
        import torchvision  # noqa: F401
    out = dict(after_imports=_status('VmRSS'))
    if side == 'kiln':
        model = bv.build_kiln(family, match_settings=True)
        batch = bv.kiln_batch(items, with_masks)
        step = bv.kiln_train_step
    else:
        model = bv.build_torchvision(family, 512, (800, 1216))
        batch = bv.tv_batch(items, with_masks)
        step = bv.tv_train_step
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    out['after_build'] = _status('VmRSS')
    out['params_mib'] = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    for _ in range(steps):
        step(model, opt, batch)
    out['after_steps'] = _status('VmRSS')
    out['peak'] = _status('VmHWM')
    print(MARK + json.dumps(out), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--families', nargs='+', choices=FAMILIES, default=list(FAMILIES))
    p.add_argument('--steps', type=int, default=3, help='training steps per process (default 3)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--json', help='also write the numbers to this file')
    args = p.parse_args()
    results = {}
    print(f'peak RSS training R50-FPN, batch 2 x 512x512, {args.steps} SGD steps, {args.threads} threads '
          f'(load average {os.getloadavg()[0]:.2f}); MiB')
    print(f'{"family":<12} {"side":<12} {"imports":>8} {"built":>8} {"steps":>8} {"PEAK":>8} {"params":>7}')
    for family in args.families:
        for side in ('kiln', 'torchvision'):
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', side, family,
                                   str(args.steps), str(args.threads)], capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
            if line is None:
                print(f'{family:<12} {side:<12} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}')
                continue
            r = results.setdefault(family, {})[side] = json.loads(line[len(MARK):])
            flag = '' if side != 'kiln' else ('  <= 1.9 GB' if r['peak'] <= TARGET_MIB else '  > 1.9 GB')
            print(f'{family:<12} {side:<12} {r["after_imports"]:8.0f} {r["after_build"]:8.0f} '
                  f'{r["after_steps"]:8.0f} {r["peak"]:8.0f} {r["params_mib"]:7.0f}{flag}', flush=True)
        if len(results.get(family, {})) == 2:
            k, t = results[family]['kiln']['peak'], results[family]['torchvision']['peak']
            print(f'{family:<12} kiln / torchvision peak: {k / t:.2f}')
    print(f'(load average after: {os.getloadavg()[0]:.2f})')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
