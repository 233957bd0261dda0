"""What each visualization backend costs per logged step.

Usage: ``.venv/bin/python benchmarks/bench_vis_backends.py [--steps N] [--backends A,B]``.

For each backend: build it in a fresh directory, time the start-up (first ``add_config``: the tracker's import,
run creation and config upload), then ``N`` calls of ``add_scalars`` with what ``LoggerHook`` sends per training
log line (10 keys: lr, loss terms, time, data_time, memory, epoch, iter), then ``close()``. Prints the start-up
time, the median and 90th-percentile wall time per ``add_scalars`` call, and the close time. W&B runs offline
(``WANDB_MODE=offline``), ClearML offline (``CLEARML_OFFLINE_MODE=1``), all writing under a temporary directory.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

BACKENDS = ['LocalVisBackend', 'TensorboardVisBackend', 'MLflowVisBackend', 'WandbVisBackend', 'DVCLiveVisBackend',
            'AimVisBackend', 'ClearMLVisBackend']


def run(name: str, steps: int, root: str) -> tuple[float, float, float, float]:
    from kiln.registry import VISBACKENDS
    import kiln.visualization  # noqa: F401  (registers the backends)
    save_dir = os.path.join(root, name, '20260101_000000', 'vis_data')
    cfg = dict(type=name, save_dir=save_dir)
    if name == 'ClearMLVisBackend':
        cfg['init_kwargs'] = dict(project_name='bench', task_name=name)
    backend = VISBACKENDS.build(cfg)
    t0 = time.perf_counter()
    backend.add_config(dict(model=dict(type='FCOS', depth=50), optim_wrapper=dict(optimizer=dict(lr=0.01))))
    startup = time.perf_counter() - t0
    times = []
    for step in range(1, steps + 1):
        tag = {'lr': 0.01, 'loss': 1.0 / step, 'loss_cls': 0.5 / step, 'loss_bbox': 0.3 / step,
               'loss_centerness': 0.2 / step, 'time': 0.21, 'data_time': 0.01, 'memory': 812, 'epoch': 1,
               'iter': step * 50}
        t = time.perf_counter()
        backend.add_scalars(tag, step=step * 50)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    backend.close()
    close = time.perf_counter() - t
    times.sort()
    return startup, statistics.median(times), times[int(0.9 * (len(times) - 1))], close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--backends', default=','.join(BACKENDS))
    args = parser.parse_args()
    os.environ.setdefault('WANDB_MODE', 'offline')
    os.environ.setdefault('WANDB_SILENT', 'true')
    os.environ.setdefault('CLEARML_OFFLINE_MODE', '1')
    with tempfile.TemporaryDirectory() as root:
        os.environ.setdefault('CLEARML_CACHE_DIR', os.path.join(root, 'clearml'))
        cwd = os.getcwd()
        os.chdir(root)  # dvclive initialises DVC in the git repository around the cwd: stay outside the repo
        try:
            print(f'{"backend":24s} {"start-up s":>10s} {"median ms/step":>15s} {"p90 ms/step":>12s} {"close s":>8s}')
            for name in args.backends.split(','):
                startup, median, p90, close = run(name, args.steps, root)
                print(f'{name:24s} {startup:10.2f} {median * 1e3:15.2f} {p90 * 1e3:12.2f} {close:8.2f}', flush=True)
        finally:
            os.chdir(cwd)


if __name__ == '__main__':
    main()
