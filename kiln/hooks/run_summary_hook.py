"""RunSummaryHook: plots and a results table in ``<log_dir>/plots`` at the end of a run."""
from __future__ import annotations

import csv
import math
import os
import os.path as osp
import re
from numbers import Number
from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['RunSummaryHook']

# Per-class metric keys of CocoMetric (``coco/bbox_<class>_precision``) and VOCMetric (``pascal_voc/<class>_AP50``).
_CLASS_KEY = r'(?:^|/)(?:bbox_|segm_)?(?P<name>.+?)_(?:precision|AP50)$'
_SKIP = ('time', 'data_time', 'epoch', 'iter', 'step')


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, Number):
        return True
    return hasattr(value, 'numel') and value.numel() == 1


@HOOKS.register_module()
class RunSummaryHook(Hook):
    """Write a run summary to ``<log_dir>/<out_dir_name>/`` (default ``work_dir/<timestamp>/plots``) when
    ``Runner.train`` / ``val`` / ``test`` ends (``after_run``, main process only):

    - ``summary.png``: one figure, one panel per training loss term and one for the learning rate (x: iteration,
      from the message hub's ``train/*`` history, i.e. every iteration), then one panel per validation scalar
      (metrics and ``val/loss*`` terms when ``val_cfg=dict(compute_loss=True)``; x: epoch, or iteration for
      iteration-based runs);
    - ``per_class_ap.png``: a bar chart of the per-class AP of the last evaluation, when the metrics hold
      per-class keys (``coco/bbox_<class>_precision`` with ``CocoMetric(classwise=True)``,
      ``pascal_voc/<class>_AP50`` with ``VOCMetric(classwise=True)``; ``class_key_regex`` changes the pattern);
    - ``results.csv``: one row per evaluation, columns ``mode, epoch, iter`` then every scalar metric (in the
      order first seen; an empty cell when a row lacks a key).

    The rows are kept in the hook's ``state_dict`` (saved in checkpoints), so a resumed run's table and plots
    cover the whole run. Figures are drawn with matplotlib's Agg canvas (no display, pyplot untouched).

    Args:
        out_dir_name: folder name under the run's ``log_dir``.
        class_key_regex: regular expression with a ``name`` group matching per-class AP keys.
        max_panels: at most this many panels in ``summary.png`` (the first ones in the order above).
        dpi: resolution of the PNG files.

    Raises:
        ValueError: ``class_key_regex`` has no ``name`` group, or ``max_panels`` < 1.
    """

    priority = 'VERY_LOW'

    def __init__(self, out_dir_name: str = 'plots', class_key_regex: str = _CLASS_KEY, max_panels: int = 24,
                 dpi: int = 100) -> None:
        self._class_re = re.compile(class_key_regex)
        if 'name' not in self._class_re.groupindex:
            raise ValueError(f'RunSummaryHook: class_key_regex must have a (?P<name>...) group, got '
                             f'{class_key_regex!r}')
        if max_panels < 1:
            raise ValueError(f'RunSummaryHook: max_panels must be >= 1, got {max_panels}')
        self.out_dir_name = out_dir_name
        self.max_panels = int(max_panels)
        self.dpi = int(dpi)
        self.rows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return dict(rows=[dict(r) for r in self.rows])

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = [dict(r) for r in state_dict.get('rows', [])]

    # ---------------------------------------------------------------------------------- collect
    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._record(runner, 'val', metrics)

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._record(runner, 'test', metrics)

    def _record(self, runner: Runner, mode: str, metrics: dict[str, Any] | None) -> None:
        row: dict[str, Any] = dict(mode=mode, epoch=int(runner.epoch), iter=int(runner.iter))
        for key, value in (metrics or {}).items():
            if _is_number(value):
                row[key] = float(value)
        self.rows.append(row)

    # ------------------------------------------------------------------------------------ write
    def after_run(self, runner: Runner) -> None:
        from kiln.dist import is_main_process
        if not is_main_process():
            return
        out = osp.join(runner.log_dir, self.out_dir_name)
        train = self._train_series(runner)
        if not train and not self.rows:
            return
        os.makedirs(out, exist_ok=True)
        written = []
        if self.rows:
            written.append(self.write_csv(osp.join(out, 'results.csv')))
        path = self.plot_summary(train, osp.join(out, 'summary.png'))
        if path:
            written.append(path)
        path = self.plot_per_class(osp.join(out, 'per_class_ap.png'))
        if path:
            written.append(path)
        runner.logger.info(f'Run summary: {", ".join(written)}')

    @staticmethod
    def _train_series(runner: Runner) -> dict[str, tuple[Any, Any]]:
        """``{key: (iterations, values)}`` of the ``train/*loss*`` and ``train/*lr`` histories."""
        import numpy as np
        series = {}
        for key, buffer in runner.message_hub.log_scalars.items():
            if not key.startswith('train/'):
                continue
            name = key[len('train/'):]
            if 'loss' not in name and not (name == 'lr' or name.endswith('.lr') or name.endswith('_lr')):
                continue
            values, _ = buffer.data
            if len(values) == 0:
                continue
            end = int(runner.iter) if int(runner.iter) >= len(values) else len(values)
            series[name] = (np.arange(end - len(values) + 1, end + 1), values)
        return series

    def columns(self) -> list[str]:
        """CSV columns: ``mode, epoch, iter`` then the metric keys in the order first seen."""
        cols = ['mode', 'epoch', 'iter']
        for row in self.rows:
            cols.extend(k for k in row if k not in cols)
        return cols

    def write_csv(self, path: str) -> str:
        """Write ``results.csv`` (one row per evaluation); returns ``path``."""
        from kiln.fileio import atomic_write
        with atomic_write(path, 'w') as f:
            writer = csv.DictWriter(f, fieldnames=self.columns(), lineterminator='\n')
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        return path

    def _metric_keys(self) -> list[str]:
        return [k for k in self.columns()[3:]
                if k.split('/')[-1] not in _SKIP and not self._class_re.search(k)]

    def plot_summary(self, train: dict[str, tuple[Any, Any]], path: str) -> str | None:
        """Draw ``summary.png``; returns its path, or None when there is nothing to draw."""
        panels: list[tuple[str, str, Any, Any, str]] = []  # (title, x label, x, y, style)
        for name, (x, y) in train.items():
            if 'loss' in name:
                panels.append((f'train/{name}', 'iteration', x, y, '-'))
        for name, (x, y) in train.items():
            if 'loss' not in name:
                panels.append((f'train/{name}', 'iteration', x, y, '-'))
        rows = [r for r in self.rows if r['mode'] == 'val'] or self.rows
        by_epoch = len({r['epoch'] for r in rows}) == len(rows) and all(r['epoch'] > 0 for r in rows)
        xkey = 'epoch' if by_epoch else 'iter'
        for key in self._metric_keys():
            pts = [(r[xkey], r[key]) for r in rows if key in r and math.isfinite(r[key])]
            if pts:
                panels.append((key, xkey, [p[0] for p in pts], [p[1] for p in pts], 'o-'))
        panels = panels[:self.max_panels]
        if not panels:
            return None
        ncols = min(4, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = _figure(figsize=(4 * ncols, 3 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (title, xlabel, x, y, style) in zip(axes.flat, panels):
            ax.plot(x, y, style, linewidth=1, markersize=3)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis('off')
        fig.tight_layout()
        fig.savefig(path, dpi=self.dpi)
        return path

    def plot_per_class(self, path: str) -> str | None:
        """Draw ``per_class_ap.png`` from the last row's per-class keys; None when there are none."""
        if not self.rows:
            return None
        items = []
        for key, value in self.rows[-1].items():
            m = self._class_re.search(key) if isinstance(key, str) and key not in ('mode', 'epoch', 'iter') else None
            if m and _is_number(value):
                items.append((m.group('name'), float(value), key))
        if not items:
            return None
        fig = _figure(figsize=(max(4.0, 0.6 * len(items) + 2), 3.5))
        ax = fig.subplots()
        names = [n for n, _, _ in items]
        values = [0.0 if math.isnan(v) else v for _, v, _ in items]
        ax.bar(range(len(items)), values, color='tab:blue')
        ax.set_xticks(range(len(items)), names, rotation=45 if len(items) > 6 else 0, ha='right'
                      if len(items) > 6 else 'center', fontsize=8)
        ax.set_ylabel('AP')
        metric = items[0][2].split('/')[0]
        row = self.rows[-1]
        ax.set_title(f'per-class AP ({metric}, {row["mode"]} at epoch {row["epoch"]}, iter {row["iter"]})',
                     fontsize=9)
        for i, v in enumerate(values):
            ax.text(i, v, f'{v:.3f}', ha='center', va='bottom', fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=self.dpi)
        return path


def _figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib ``Figure`` drawn by the Agg canvas: no pyplot, no global backend change, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig
