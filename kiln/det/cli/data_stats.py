"""``kiln data-stats CONFIG|--data PATH [--out-dir DIR]``: what to look at before training.

For each dataloader / split: images and instances per class, images without objects, image sizes, and the
distributions of box size (sqrt of the area, pixels) and aspect ratio (h / w), printed as a table and written
as ``<out-dir>/data_stats_<split>.json`` and ``.png`` (matplotlib). Sizes are those of the annotation records
(original image pixels), i.e. before the pipeline's resize: scale them by your ``Resize`` factor to compare
with the strides / regression ranges of the head.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Any

from kiln.cli._common import CLIError

from .check_data import STAGES, add_source_arguments, resolve_datasets

__all__ = ['add_parser', 'run', 'collect_stats', 'plot_stats']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``data-stats`` sub-command."""
    p = subparsers.add_parser('data-stats', help='per-class counts and box size / aspect histograms',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p)
    p.add_argument('--stage', choices=STAGES, action='append', help='only this dataloader / split (repeatable)')
    p.add_argument('--out-dir', default='data_stats', help='where the JSON and PNG files go (default ./data_stats)')
    p.set_defaults(func=run)
    return p


def collect_stats(ds_cfg: Any) -> dict:
    """Build the dataset (its pipeline left out) and return :func:`kiln.det.datasets.checks.dataset_stats` of
    its records; wrappers (``ConcatDataset`` ...) are read part by part."""
    from kiln.det.datasets.checks import _leaf_dataset_cfgs, dataset_stats
    from kiln.registry import DATASETS
    import kiln.det.datasets  # noqa: F401
    records: list[dict] = []
    classes = None
    for leaf in _leaf_dataset_cfgs(ds_cfg):
        leaf = dict(leaf, pipeline=[]) if isinstance(leaf, dict) else leaf
        ds = DATASETS.build(leaf) if isinstance(leaf, dict) else leaf
        classes = classes or tuple(ds.metainfo.get('classes') or ())
        records += [ds.get_data_info(i) for i in range(len(ds))]
    return dataset_stats(records, classes or ())


def plot_stats(stats: dict, title: str, out_file: str) -> None:
    """A 2x2 PNG: instances and images per class, box size histogram (log bins), aspect ratio histogram."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    names = [c['name'] for c in stats['classes']]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    x = np.arange(len(names))
    ax = axes[0, 0]
    ax.bar(x, [c['instances'] for c in stats['classes']], color='tab:blue')
    ax.set_title('instances per class')
    ax = axes[0, 1]
    ax.bar(x, [c['images'] for c in stats['classes']], color='tab:orange')
    ax.set_title(f'images per class ({stats["num_images"]} images, {stats["num_empty_images"]} without objects)')
    for ax in axes[0]:
        ax.set_xticks(x, names, rotation=90 if len(names) > 8 else 0, fontsize=7 if len(names) > 20 else 9)
    sizes = np.asarray(stats['box_sqrt_area'], dtype=float)
    sizes = sizes[sizes > 0]
    ax = axes[1, 0]
    if sizes.size:
        bins = np.logspace(np.log10(max(sizes.min(), 0.5)), np.log10(sizes.max() + 1), 30)
        ax.hist(sizes, bins=bins, color='tab:green')
        ax.set_xscale('log')
        for edge in (32, 96):  # COCO's small / medium / large limits
            ax.axvline(edge, color='grey', linestyle='--', linewidth=1)
    ax.set_title('box size sqrt(w*h), pixels (COCO small<32<medium<96<large)')
    aspects = np.asarray(stats['box_aspect'], dtype=float)
    aspects = aspects[np.isfinite(aspects) & (aspects > 0)]
    ax = axes[1, 1]
    if aspects.size:
        ax.hist(aspects, bins=np.logspace(np.log10(aspects.min()), np.log10(aspects.max()) + 1e-6, 30),
                color='tab:purple')
        ax.set_xscale('log')
    ax.set_title('box aspect ratio h / w')
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=80)
    plt.close(fig)


def _percentiles(values: list[float]) -> dict:
    import numpy as np
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if not arr.size:
        return {}
    q = np.percentile(arr, [0, 5, 25, 50, 75, 95, 100])
    return dict(zip(('min', 'p5', 'p25', 'median', 'p75', 'p95', 'max'), (round(float(v), 2) for v in q)))


def run(args: argparse.Namespace) -> int:
    """Compute, print and write the statistics of each dataloader / split."""
    datasets, _ = resolve_datasets(args, tuple(args.stage or STAGES), 'data-stats')
    os.makedirs(args.out_dir, exist_ok=True)
    done: set[str] = set()
    for name, ds_cfg in datasets:
        key = json.dumps(ds_cfg, sort_keys=True, default=str)
        if key in done:
            continue
        done.add(key)
        try:
            stats = collect_stats(ds_cfg)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise CLIError(f'{name}: cannot read the dataset: {e} (run kiln check-data for the full list)') from e
        summary = dict(stats, box_sqrt_area=_percentiles(stats['box_sqrt_area']),
                       box_aspect=_percentiles(stats['box_aspect']), box_width=_percentiles(stats['box_width']),
                       box_height=_percentiles(stats['box_height']))
        print(f'[{name}] {stats["num_images"]} images ({stats["num_empty_images"]} without objects), '
              f'{stats["num_instances"]} instances')
        width = max([len(c['name']) for c in stats['classes']] + [5])
        print(f'  {"class":<{width}}  {"images":>7}  {"instances":>9}')
        for c in stats['classes']:
            print(f'  {c["name"]:<{width}}  {c["images"]:>7}  {c["instances"]:>9}')
        print(f'  box sqrt(area) px: {summary["box_sqrt_area"]}')
        print(f'  box aspect h/w:    {summary["box_aspect"]}')
        json_file = osp.join(args.out_dir, f'data_stats_{name}.json')
        with open(json_file, 'w', encoding='utf-8') as f:
            json.dump(dict(summary=summary, box_sqrt_area=stats['box_sqrt_area'],
                           box_aspect=[v if v != float('inf') else None for v in stats['box_aspect']]), f)
        png_file = osp.join(args.out_dir, f'data_stats_{name}.png')
        plot_stats(stats, f'{name}: {stats["num_images"]} images, {stats["num_instances"]} instances', png_file)
        print(f'  wrote {json_file} and {png_file}')
    return 0
