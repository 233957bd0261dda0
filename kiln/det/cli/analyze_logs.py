"""``kiln analyze-logs {plot-curve,cal-train-time} WORK_DIR...``: plot logged scalars, summarise iteration times.

The logs are the JSON-lines scalar files the Runner's ``LocalVisBackend`` writes,
``<work_dir>/<timestamp>/vis_data/scalars.json``: training lines hold the logged values plus ``epoch`` (epoch
runs), ``iter`` and ``step`` (= the iteration); validation lines hold the metrics (``coco/bbox_mAP``...) and
``step`` (the epoch, or the iteration with ``log_metric_by_epoch=False``), without ``iter``.

A WORK_DIR argument can be a work dir (its latest ``<timestamp>`` with a ``scalars.json`` is read), a
``<timestamp>`` log dir, or a ``scalars.json`` file.

Reference: MMDetection 3.x ``tools/analysis_tools/analyze_logs.py`` (``plot_curve``, ``cal_train_time``
semantics), re-implemented for kiln's log layout.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Any, Sequence

from kiln.cli._common import CLIError

__all__ = ['add_parser', 'cal_train_time', 'find_scalars', 'load_scalars', 'plot_curve', 'run']


def find_scalars(path: str) -> str:
    """The ``scalars.json`` a WORK_DIR argument names (see the module docstring).

    Raises:
        CLIError: nothing matching exists (names the path and what was looked for).
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise CLIError(f'{path!r} does not exist (expected a work dir, a <timestamp> log dir or a scalars.json)')
    direct = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return direct
    runs = sorted(d for d in os.listdir(path) if osp.isfile(osp.join(path, d, 'vis_data', 'scalars.json')))
    if not runs:
        raise CLIError(f'{path!r} has no <timestamp>/vis_data/scalars.json (was the run logged with '
                       'LocalVisBackend?)')
    return osp.join(path, runs[-1], 'vis_data', 'scalars.json')


def load_scalars(path: str) -> list[dict]:
    """The records of a ``scalars.json`` (one JSON object per line; blank lines skipped).

    Raises:
        CLIError: a line is not a JSON object (names the file and line number).
    """
    records = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CLIError(f'{path}:{n}: not a JSON line ({e.msg})') from None
            if not isinstance(rec, dict):
                raise CLIError(f'{path}:{n}: expected a JSON object, got {type(rec).__name__}')
            records.append(rec)
    return records


def _is_train(rec: dict) -> bool:
    return 'iter' in rec


def curve_series(records: Sequence[dict], key: str, label: str) -> dict:
    """``{key, label, x, y, xlabel}`` of one scalar of one run.

    A key logged during training (in lines with ``iter``) is plotted from the training lines against the
    iteration; any other key (validation metrics) from the lines that have it, against their ``step``, labelled
    ``epoch`` when the training lines carry ``epoch`` and the steps do not exceed the last epoch, else ``iter``.

    Raises:
        CLIError: no line has ``key`` (lists the keys that exist).
    """
    train = [r for r in records if _is_train(r) and key in r]
    if train:
        return dict(key=key, label=label, x=[r['iter'] for r in train], y=[r[key] for r in train], xlabel='iter')
    other = [r for r in records if not _is_train(r) and key in r]
    if not other:
        keys = sorted({k for r in records for k in r} - {'step', 'iter', 'epoch'})
        raise CLIError(f'key {key!r} is not in the log (keys: {", ".join(keys)})')
    epochs = [r['epoch'] for r in records if _is_train(r) and 'epoch' in r]
    steps = [r.get('step', i + 1) for i, r in enumerate(other)]
    by_epoch = bool(epochs) and max(steps) <= max(epochs)
    return dict(key=key, label=label, x=steps, y=[r[key] for r in other], xlabel='epoch' if by_epoch else 'iter')


def plot_curve(work_dirs: Sequence[str], keys: Sequence[str], out: str, legend: Sequence[str] | None = None,
               title: str | None = None) -> str:
    """One PNG, one subplot per key, each run a line (legend ``<run>: <key>`` or ``legend``); returns ``out``.

    Raises:
        CLIError: a missing log or key; ``legend`` of the wrong length.
    """
    from kiln.det.visualization.plots import plot_scalar_curves
    if legend is not None and len(legend) != len(work_dirs) * len(keys):
        raise CLIError(f'--legend needs {len(work_dirs) * len(keys)} names (runs x keys), got {len(legend)}')
    series = []
    for i, wd in enumerate(work_dirs):
        path = find_scalars(wd)
        records = load_scalars(path)
        run_name = _run_name(path)
        for j, key in enumerate(keys):
            label = legend[i * len(keys) + j] if legend is not None else f'{run_name}: {key}'
            try:
                series.append(curve_series(records, key, label))
            except CLIError as e:
                raise CLIError(f'{path}: {e}') from None
    return plot_scalar_curves(series, out, title=title)


def _run_name(scalars_path: str) -> str:
    """``<work dir name>/<timestamp>`` of a ``.../<work dir>/<timestamp>/vis_data/scalars.json`` path."""
    parts = osp.normpath(osp.abspath(scalars_path)).split(os.sep)
    return '/'.join(parts[-4:-2]) if len(parts) >= 4 and parts[-2] == 'vis_data' else osp.basename(scalars_path)


def cal_train_time(records: Sequence[dict], include_outliers: bool = False) -> dict[str, Any]:
    """Iteration times of a run, MMDetection's ``cal_train_time``: the logged ``time`` (seconds per
    iteration, averaged over the log interval) of the training lines, grouped by ``epoch`` (one group for
    iteration-based runs); the first value of each epoch is dropped (data loader start-up) unless
    ``include_outliers`` or it is the epoch's only value.

    Returns:
        ``{'epoch_mean': {epoch: s/iter}, 'slowest_epoch', 'slowest_time', 'fastest_epoch', 'fastest_time',
        'std_over_epochs', 'mean_iter_time'}`` (seconds).

    Raises:
        CLIError: no training line has ``time``.
    """
    import numpy as np
    groups: dict[Any, list[float]] = defaultdict(list)
    for r in records:
        if _is_train(r) and 'time' in r:
            groups[r.get('epoch', 1)].append(float(r['time']))
    if not groups:
        raise CLIError('no training line with "time" in the log (is the log interval longer than the run?)')
    kept = {e: (t if include_outliers or len(t) == 1 else t[1:]) for e, t in groups.items()}
    means = {e: float(np.mean(t)) for e, t in kept.items()}
    epochs = list(means)
    values = np.array([means[e] for e in epochs])
    slow, fast = int(values.argmax()), int(values.argmin())
    return dict(epoch_mean=means, slowest_epoch=epochs[slow], slowest_time=float(values[slow]),
                fastest_epoch=epochs[fast], fastest_time=float(values[fast]), std_over_epochs=float(values.std()),
                mean_iter_time=float(np.mean(np.concatenate([np.asarray(t) for t in kept.values()]))))


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``analyze-logs`` sub-command and its ``plot-curve`` / ``cal-train-time`` actions."""
    p = subparsers.add_parser('analyze-logs', help='plot logged scalars of runs, summarise iteration times',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='action', required=True, metavar='ACTION')
    plot = sub.add_parser('plot-curve', help='PNG of scalars over iterations / epochs, runs overlaid')
    plot.add_argument('work_dirs', nargs='+', metavar='WORK_DIR', help='work dir, log dir or scalars.json')
    plot.add_argument('--keys', nargs='+', default=['loss'], help='scalars to plot (default: loss), e.g. loss '
                                                                  'coco/bbox_mAP')
    plot.add_argument('--legend', nargs='+', help='one name per run and key (runs x keys, in that order)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', help='PNG file (default: <first WORK_DIR>/curves.png, or ./curves.png for a file)')
    timing = sub.add_parser('cal-train-time', help='slowest / fastest epoch and mean time per iteration')
    timing.add_argument('work_dirs', nargs='+', metavar='WORK_DIR', help='work dir, log dir or scalars.json')
    timing.add_argument('--include-outliers', action='store_true',
                        help='keep the first logged time of every epoch')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.action == 'plot-curve':
        out = args.out
        if out is None:
            first = args.work_dirs[0]
            out = osp.join(first, 'curves.png') if osp.isdir(first) else 'curves.png'
        path = plot_curve(args.work_dirs, args.keys, out, legend=args.legend, title=args.title)
        print(f'curves of {", ".join(args.keys)} saved to {path}')
        return 0
    for wd in args.work_dirs:
        path = find_scalars(wd)
        res = cal_train_time(load_scalars(path), args.include_outliers)
        print(f'{"-" * 5} train time of {path} {"-" * 5}')
        print(f'slowest epoch {res["slowest_epoch"]}, average time is {res["slowest_time"]:.4f} s/iter')
        print(f'fastest epoch {res["fastest_epoch"]}, average time is {res["fastest_time"]:.4f} s/iter')
        print(f'time std over epochs is {res["std_over_epochs"]:.4f}')
        print(f'average iter time: {res["mean_iter_time"]:.4f} s/iter')
        print()
    return 0
