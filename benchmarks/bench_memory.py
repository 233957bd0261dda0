"""Peak resident memory of training an R50-FPN detector at batch 2 of 512x512: kiln next to torchvision.

For each family (RetinaNet, FCOS, Faster R-CNN, Mask R-CNN; random init, 80 classes) and each side (kiln from
``configs/_base_/models``, torchvision's ``*_resnet50_fpn``), a fresh Python process builds the model, takes the
same batch as ``benchmarks/bench_vs_torchvision.py`` (2 coco128 val images resized to 512x512 with boxes / labels /
masks; its helpers are imported, so the two benchmarks see the same data and the same models) and runs a few SGD
training steps. The process reports its resident set size (``VmRSS``) after the imports, after the model build
and after the steps, and its peak (``VmHWM``, the high-water mark; ``ru_maxrss`` where /proc is missing), in MiB.
One process per (side, family, malloc setting), so no run's allocations leak into another's peak.

Malloc setting (``--malloc``): ``kiln`` = what ``kiln train`` and the Runner apply when asked (opt in:
``env_cfg.malloc_cfg=True``; ``kiln.utils.malloc.tune_malloc(True)``: glibc's mmap threshold fixed, freed activation memory goes back to the
system), called first thing in the child, for both sides; ``off`` = glibc's defaults (``KILN_MALLOC=0``);
``both`` (default) runs each side with both and prints the peak ratio. The median seconds per step (steps after
the first) show what the setting costs in speed.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_memory.py [--families retinanet fcos faster_rcnn mask_rcnn] [--steps 3]
        [--threads 2] [--malloc both|kiln|off] [--json out.json]
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


def _child(side: str, family: str, steps: int, threads: int, malloc: str) -> None:
    if malloc == 'kiln':
        from kiln.utils.malloc import tune_malloc
        settings = tune_malloc(True, source='bench_memory')
    else:
        os.environ['KILN_MALLOC'] = '0'
        settings = {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import time

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
    out = dict(malloc=settings, after_imports=_status('VmRSS'))
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
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(model, opt, batch)
        times.append(time.perf_counter() - start)
    later = sorted(times[1:] or times)
    out['step_s'] = later[len(later) // 2]  # median of the steps after the first
    out['after_steps'] = _status('VmRSS')
    out['peak'] = _status('VmHWM')
    print(MARK + json.dumps(out), flush=True)


def run_child(side: str, family: str, steps: int, threads: int, malloc: str) -> dict | str:
    """One measurement in a fresh process: the child's numbers as a dict, or the reason it failed (a str)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', side, family, str(steps),
                           str(threads), malloc], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        return f'failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}'
    return json.loads(line[len(MARK):])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        return
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--families', nargs='+', choices=FAMILIES, default=list(FAMILIES))
    p.add_argument('--steps', type=int, default=3, help='training steps per process (default 3)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--malloc', choices=('both', 'kiln', 'off'), default='both',
                   help="kiln: kiln's default glibc malloc settings (what kiln train applies); off: glibc's "
                        'defaults (KILN_MALLOC=0); both (default): each side with both')
    p.add_argument('--json', help='also write the numbers to this file')
    args = p.parse_args()
    modes = ('kiln', 'off') if args.malloc == 'both' else (args.malloc,)
    results: dict = {}
    print(f'peak RSS training R50-FPN, batch 2 x 512x512, {args.steps} SGD steps, {args.threads} threads '
          f'(load average {os.getloadavg()[0]:.2f}); MiB; malloc kiln = kiln.utils.malloc defaults, '
          'off = glibc defaults')
    print(f'{"family":<12} {"side":<12} {"malloc":<6} {"imports":>8} {"built":>8} {"steps":>8} {"PEAK":>8} '
          f'{"params":>7} {"s/step":>7}')
    for family in args.families:
        for side in ('kiln', 'torchvision'):
            for mode in modes:
                r = run_child(side, family, args.steps, args.threads, mode)
                if isinstance(r, str):
                    print(f'{family:<12} {side:<12} {mode:<6} {r}')
                    continue
                results.setdefault(family, {}).setdefault(side, {})[mode] = r
                flag = '' if side != 'kiln' else ('  <= 1.9 GB' if r['peak'] <= TARGET_MIB else '  > 1.9 GB')
                print(f'{family:<12} {side:<12} {mode:<6} {r["after_imports"]:8.0f} {r["after_build"]:8.0f} '
                      f'{r["after_steps"]:8.0f} {r["peak"]:8.0f} {r["params_mib"]:7.0f} {r["step_s"]:7.2f}{flag}',
                      flush=True)
        for side, by_mode in results.get(family, {}).items():
            if len(by_mode) == 2:
                print(f'{family:<12} {side:<12} peak malloc kiln / off: '
                      f'{by_mode["kiln"]["peak"] / by_mode["off"]["peak"]:.2f}, '
                      f's/step kiln / off: {by_mode["kiln"]["step_s"] / by_mode["off"]["step_s"]:.2f}')
        for mode in modes:
            kiln_r, tv_r = (results.get(family, {}).get(side, {}).get(mode) for side in ('kiln', 'torchvision'))
            if kiln_r and tv_r:
                print(f'{family:<12} malloc {mode}: kiln / torchvision peak {kiln_r["peak"] / tv_r["peak"]:.2f}')
    print(f'(load average after: {os.getloadavg()[0]:.2f})')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
