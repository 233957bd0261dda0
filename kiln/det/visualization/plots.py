"""PNG plots of evaluation results and training logs (matplotlib, drawn off-screen with the Agg canvas).

Each function builds its own ``matplotlib.figure.Figure`` (no pyplot state, nothing shown, safe in worker
processes and without a display) and writes a PNG. matplotlib is imported on first use.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Sequence

import numpy as np

__all__ = ['plot_confusion_matrix', 'plot_pr_curves', 'plot_scalar_curves']


def _figure(width: float, height: float, dpi: int = 120) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_file: str | os.PathLike) -> str:
    out_file = str(out_file)
    if osp.dirname(out_file):
        os.makedirs(osp.dirname(out_file), exist_ok=True)
    fig.savefig(out_file, format='png')
    return out_file


def plot_pr_curves(curves: dict, out_file: str | os.PathLike, title: str | None = None) -> str:
    """One PNG with a precision-recall curve per class (legend: class, AP, ground-truth count) and their mean.

    Args:
        curves: the dict of :func:`kiln.det.evaluation.analysis.pr_curves` (``recall`` (R,), ``precision``
            (C, R) with NaN rows for classes without ground truth, ``ap`` (C,), ``num_gts`` (C,), ``classes``,
            ``iou_thr``).
        out_file: the PNG to write (directories created).
        title: figure title (default names the IoU threshold).

    Returns:
        ``out_file`` as a string.
    """
    recall, precision = np.asarray(curves['recall']), np.asarray(curves['precision'], dtype=np.float64)
    classes, ap = curves['classes'], np.asarray(curves['ap'], dtype=np.float64)
    num_gts = np.asarray(curves.get('num_gts', [0] * len(classes)))
    fig = _figure(7, 6)
    ax = fig.add_subplot(1, 1, 1)
    present = ~np.isnan(ap)
    for k, name in enumerate(classes):
        if present[k]:  # drawn up to the class's last reached recall point
            end = int(np.flatnonzero(precision[k] > 0)[-1]) + 1 if (precision[k] > 0).any() else 0
            ax.plot(recall[:end], precision[k, :end], linewidth=1.2,
                    label=f'{name}  AP {ap[k]:.3f}  ({int(num_gts[k])} gt)')
    if present.any():
        ax.plot(recall, precision[present].mean(axis=0), color='black', linewidth=2.5,
                label=f'all classes  mAP {ap[present].mean():.3f}')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f'Precision-recall per class (IoU {curves.get("iou_thr", 0.5):.2f}, COCO interpolation)')
    ax.legend(loc='lower left', fontsize='small', framealpha=0.8)
    fig.tight_layout()
    return _save(fig, out_file)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], out_file: str | os.PathLike,
                          title: str = 'Normalized confusion matrix', cmap: str = 'plasma') -> str:
    """The confusion matrix as a heat map of row-normalised percentages (each ground-truth row sums to 100 %),
    each cell labelled with its percentage and count, as MMDetection's ``confusion_matrix.py`` draws it.

    Args:
        matrix: (C + 1, C + 1) counts, rows = ground truth, columns = predictions, last = background
            (:func:`kiln.det.evaluation.analysis.confusion_matrix`).
        labels: the C + 1 row/column names (class names and ``'background'``).
        out_file: the PNG to write.
        title: figure title.
        cmap: matplotlib colour map name.

    Returns:
        ``out_file`` as a string.

    Raises:
        ValueError: ``matrix`` is not square or does not match ``labels``.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise ValueError(f'plot_confusion_matrix: expected a ({len(labels)}, {len(labels)}) matrix for the labels '
                         f'{list(labels)}, got shape {matrix.shape}')
    sums = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        percent = np.where(sums > 0, matrix / np.maximum(sums, 1) * 100, np.nan)
    n = len(labels)
    size = max(4.0, 0.75 * n + 2)
    fig = _figure(size + 1, size, dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(percent, cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='% of the ground-truth row')
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xticklabels(labels, rotation=45, ha='left', rotation_mode='anchor')
    ax.set_yticklabels(labels)
    ax.tick_params(axis='x', top=True, bottom=False, labeltop=True, labelbottom=False)
    ax.set_xlabel('predicted label')
    ax.set_ylabel('ground-truth label')
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which='minor', color='white', linewidth=1)
    ax.tick_params(which='minor', length=0)
    for i in range(n):
        for j in range(n):
            text = '-' if np.isnan(percent[i, j]) else f'{percent[i, j]:.0f}%\n{int(matrix[i, j])}'
            ax.text(j, i, text, ha='center', va='center', fontsize=7,
                    color='black' if not np.isnan(percent[i, j]) and percent[i, j] > 60 else 'white')
    ax.set_title(title, fontweight='bold')
    fig.tight_layout()
    return _save(fig, out_file)


def plot_scalar_curves(series: Sequence[dict], out_file: str | os.PathLike, title: str | None = None) -> str:
    """Curves of logged scalars, one subplot per key, several runs overlaid.

    Args:
        series: dicts with ``key`` (the scalar name, one subplot each in first-seen order), ``label`` (legend),
            ``x`` and ``y`` (equal-length sequences) and ``xlabel`` (e.g. ``'iter'`` or ``'epoch'``).
        out_file: the PNG to write.
        title: figure title.

    Returns:
        ``out_file`` as a string.

    Raises:
        ValueError: ``series`` is empty.
    """
    if not series:
        raise ValueError('plot_scalar_curves: nothing to plot')
    keys = list(dict.fromkeys(s['key'] for s in series))
    fig = _figure(8, 3.2 * len(keys))
    axes = [fig.add_subplot(len(keys), 1, i + 1) for i in range(len(keys))]
    for s in series:
        ax = axes[keys.index(s['key'])]
        x, y = np.asarray(s['x']), np.asarray(s['y'], dtype=np.float64)
        style = dict(marker='o', markersize=4) if len(x) <= 50 else {}
        ax.plot(x, y, linewidth=1.2, label=s['label'], **style)
        ax.set_xlabel(s.get('xlabel', 'step'))
        if s.get('xlabel') == 'epoch':
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(s['key'])
        ax.grid(True, alpha=0.3)
    for ax in axes:
        ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out_file)
