"""Start-up time of ``kiln train``: from the command to the first training iteration, with a breakdown.

Runs ``kiln train CONFIG`` (through ``kiln.cli.main.main``, as the console script does) N times, each in a fresh
Python process, and prints the median time from the launch of the process to the start of the first training
iteration (batch ready, ``before_train_iter``) and to its end, split into phases:

- python start: interpreter + ``site`` (launch -> first line of the child);
- imports: ``kiln.cli`` and ``kiln.runner`` (which import torch);
- config: ``Config.fromfile`` + ``--cfg-options``;
- default scope: ``init_default_scope`` (imports the toolbox, e.g. ``kiln.det``: registry population);
- setup_env, runner init (logger, visualizer, hooks), log_start (environment summary, config dump);
- model build, weights init, dataset indexing (excluded from the issue's 2 s target), loop / dataloader build,
  optim wrapper + schedulers, the ``before_run`` / ``before_train`` / ``before_train_epoch`` hooks;
- loader start + first batch (worker start-up and the first batch, between ``before_train_epoch`` and the first
  ``before_train_iter``);
- first iteration (forward, backward, step and the ``*_train_iter`` hooks).

The phases are measured by wrapping those functions in the child (exclusive times: a nested wrapped call is
counted in its own phase only). The child leaves with ``os._exit(0)`` after the first iteration. Next to it, the
floors: ``python -c "import torch"`` and ``python -c "import torch, torchvision"``. The machine is shared: the
load average (1 min) is printed before and after.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_startup.py [CONFIG] [-n 5] [--cfg-options k=v ...]
    .venv/bin/python benchmarks/bench_startup.py --data data/bccd --model fcos -n 3   # zero-config path
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_CONFIG = 'configs/fcos/fcos_r18-slim_fpn_bccd.py'
MARK = 'KILN_STARTUP_JSON '


# ------------------------------------------------------------------------------------------------ child
class _Timer:
    """Exclusive wall time per label of nested wrapped calls, and named time stamps."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.stamps: dict[str, float] = {}
        self._stack: list[list] = []  # [label, start, time spent in nested wrapped calls]

    def call(self, label: str, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` and charge its time to ``label``, minus the time of nested timed calls."""
        frame = [label, time.time(), 0.0]
        self._stack.append(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            self._stack.pop()
            spent = time.time() - frame[1]
            self.add(label, spent - frame[2])
            if self._stack:
                self._stack[-1][2] += spent

    def add(self, label: str, seconds: float) -> None:
        self.totals[label] = self.totals.get(label, 0.0) + seconds

    def wrap(self, owner: object, attr: str, label: str | None = None, label_fn=None) -> None:
        fn = getattr(owner, attr)
        timer = self

        def wrapper(*args, **kwargs):
            name = label_fn(*args, **kwargs) if label_fn else label
            if name is None:
                return fn(*args, **kwargs)
            return timer.call(name, fn, *args, **kwargs)

        wrapper.__wrapped__ = fn
        setattr(owner, attr, wrapper)


def _child(argv: list[str]) -> None:
    t_launch = float(os.environ['KILN_BENCH_T0'])
    t_first_line = time.time()
    timer = _Timer()
    timer.add('python start', t_first_line - t_launch)

    t = time.time()
    import importlib
    cli_main = importlib.import_module('kiln.cli.main')
    cli_train = importlib.import_module('kiln.cli.train')
    timer.add('import kiln.cli', time.time() - t)
    t = time.time()
    import kiln.runner.runner as runner_mod  # imports torch
    timer.add('import kiln.runner (torch)', time.time() - t)
    from kiln.dataset.base_dataset import BaseDataset
    from kiln.runner.runner import Runner

    timer.wrap(cli_train, 'load_config', 'config')
    init_scope = runner_mod.init_default_scope

    def init_scope_then_wrap(*args, **kwargs):
        result = init_scope(*args, **kwargs)
        det = sys.modules.get('kiln.det.datasets.base_det_dataset')
        if det is not None and 'full_init' in vars(det.BaseDetDataset) and not hasattr(
                det.BaseDetDataset.full_init, '__wrapped__'):
            timer.wrap(det.BaseDetDataset, 'full_init', 'dataset indexing')
        return result

    import kiln.registry
    for owner in (runner_mod, kiln.registry):  # build_runner imports it from kiln.registry when it runs
        owner.init_default_scope = init_scope_then_wrap
        timer.wrap(owner, 'init_default_scope', 'default scope (toolbox import)')
    timer.wrap(runner_mod, 'setup_env', 'setup_env')
    timer.wrap(runner_mod, 'log_start', 'log_start (env, config dump)')
    timer.wrap(Runner, '__init__', 'runner init (logger, visualizer, hooks)')
    timer.wrap(Runner, 'build_model', 'model build')
    timer.wrap(Runner, '_init_model_weights', 'weights init')
    timer.wrap(Runner, 'build_train_loop', 'train loop + dataloader build')
    timer.wrap(Runner, 'build_val_loop', 'val loop + dataloader build')
    timer.wrap(Runner, 'build_optim_wrapper', 'optim wrapper')
    timer.wrap(Runner, 'build_param_scheduler', 'param schedulers')
    timer.wrap(BaseDataset, 'full_init', 'dataset indexing')

    def on_hook(runner, fn_name, **kwargs):
        return f'hook {fn_name}' if fn_name in ('before_run', 'before_train', 'before_train_epoch') else None

    call_hook = Runner.call_hook

    def call_hook_timed(self, fn_name, **kwargs):
        label = on_hook(self, fn_name, **kwargs)
        if label is None:
            return call_hook(self, fn_name, **kwargs)
        try:
            timer.call(label, call_hook, self, fn_name, **kwargs)
        finally:
            if fn_name == 'before_train_epoch':
                timer.stamps['after_epoch_hook'] = time.time()

    # the loops call Runner.call_hook for the stage hooks; per-iteration hooks go through a cached list, so the
    # first iteration is timed around _TrainLoop.run_iter
    Runner.call_hook = call_hook_timed
    from kiln.runner import loops
    run_iter = loops._TrainLoop.run_iter

    def run_iter_timed(self, *args, **kwargs):
        start = time.time()
        timer.add('loader start + first batch', start - timer.stamps.get('after_epoch_hook', start))
        run_iter(self, *args, **kwargs)
        end = time.time()
        timer.add('first iteration', end - start)
        out = dict(phases=timer.totals, to_first_iter=start - t_launch, to_first_iter_end=end - t_launch,
                   modules=sorted(m for m in ('matplotlib', 'pycocotools', 'cv2', 'rich', 'tensorboard',
                                              'mlflow', 'wandb', 'torch._dynamo', 'sympy', 'scipy', 'pandas',
                                              'torchvision', 'PIL', 'fsspec', 'faster_coco_eval')
                                  if m in sys.modules))
        print(MARK + json.dumps(out), flush=True)
        os._exit(0)

    loops._TrainLoop.run_iter = run_iter_timed
    sys.exit(cli_main.main(['train', *argv]))


# ----------------------------------------------------------------------------------------------- parent
def _load() -> float:
    return os.getloadavg()[0]


def _floor(code: str, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.time()
        subprocess.run([sys.executable, '-c', code], check=True)
        times.append(time.time() - t)
    return statistics.median(times)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?', default=None, help=f'config file (default {DEFAULT_CONFIG})')
    parser.add_argument('-n', type=int, default=5, help='number of runs (median reported)')
    parser.add_argument('--data', help='zero-config path: kiln train --data PATH (instead of a config)')
    parser.add_argument('--model', help='with --data: the model name')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    parser.add_argument('--no-floor', action='store_true', help='skip the import torch / torchvision floors')
    args = parser.parse_args()

    load_before = _load()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            child_args = ['--data', args.data, '--epochs', '1']
            if args.model:
                child_args += ['--model', args.model]
        else:
            child_args = [args.config or DEFAULT_CONFIG]
        child_args += ['--no-progress']
        if args.cfg_options:
            child_args += ['--cfg-options', *args.cfg_options]
        for i in range(args.n):
            work_dir = os.path.join(tmp, f'run{i}')
            env = dict(os.environ, KILN_BENCH_T0=repr(time.time()))
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', *child_args,
                                   '--work-dir', work_dir], env=env, capture_output=True, text=True,
                                  timeout=900)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
            if line is None:
                sys.exit(f'run {i}: no first iteration (exit {proc.returncode})\n{proc.stdout[-3000:]}\n'
                         f'{proc.stderr[-3000:]}')
            runs.append(json.loads(line[len(MARK):]))
    floors = {}
    if not args.no_floor:
        floors['python -c "import torch"'] = _floor('import torch', args.n)
        floors['python -c "import torch, torchvision"'] = _floor('import torch, torchvision', args.n)
    load_after = _load()

    what = f'--data {args.data}' if args.data else (args.config or DEFAULT_CONFIG)
    med = statistics.median
    first = med(r['to_first_iter'] for r in runs)
    first_end = med(r['to_first_iter_end'] for r in runs)
    indexing = med(r['phases'].get('dataset indexing', 0.0) for r in runs)
    print(f'kiln train {what}: {args.n} runs, load average {load_before:.2f} -> {load_after:.2f}')
    print(f'  to first iteration (batch ready):  median {first:6.2f} s  '
          f'(minus dataset indexing {indexing:.2f} s: {first - indexing:.2f} s)')
    print(f'  to end of first iteration:         median {first_end:6.2f} s')
    print('  breakdown (median of each phase, exclusive):')
    labels = list(dict.fromkeys(label for r in runs for label in r['phases']))
    accounted = 0.0
    for label in labels:
        value = med(r['phases'].get(label, 0.0) for r in runs)
        if label != 'first iteration':
            accounted += value
        print(f'    {label:<42s} {value:6.3f} s')
    print(f'    {"(other, not wrapped)":<42s} {first - accounted:6.3f} s')
    print(f'  heavy modules loaded by the first iteration: {", ".join(runs[-1]["modules"]) or "none"}')
    for name, value in floors.items():
        print(f'  floor: {name:<42s} median {value:6.2f} s')


if __name__ == '__main__':
    main()
