"""``kiln browse-dataset CONFIG [--output-dir DIR] [--stage train|val|test] [-n N]``: draw what the model sees.

Runs the stage's dataset pipeline (augmentations included) on the first N samples and writes one PNG per
sample with the packed image and its ground truth (boxes, class names, masks) drawn by ``DetLocalVisualizer``
(MMDetection's ``tools/analysis_tools/browse_dataset.py``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from kiln.cli._common import CLIError, add_cfg_options, load_config

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``browse-dataset`` sub-command."""
    p = subparsers.add_parser('browse-dataset', help='draw pipeline outputs with their ground truth as PNGs',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='config file')
    p.add_argument('--output-dir', default='browse_dataset', help='where the PNGs go (default ./browse_dataset)')
    p.add_argument('--stage', choices=('train', 'val', 'test'), default='train', help='which dataloader')
    p.add_argument('-n', '--num', type=int, default=10, help='number of samples (default 10)')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the dataset with its pipeline and draw the first ``-n`` samples."""
    import numpy as np

    from kiln.registry import DATASETS, VISUALIZERS, init_default_scope
    cfg = load_config(args.config, args.cfg_options, command='browse-dataset')
    init_default_scope(cfg.get('default_scope', 'kiln'))
    loader = cfg.get(f'{args.stage}_dataloader')
    if not loader or not loader.get('dataset'):
        raise CLIError(f'{args.config}: no {args.stage}_dataloader.dataset')
    if args.num < 1:
        raise CLIError(f'-n must be >= 1, got {args.num}')
    dataset = DATASETS.build(loader['dataset'])
    vis_cfg = dict(cfg.get('visualizer') or dict(type='DetLocalVisualizer'))
    vis_cfg.update(vis_backends=None, name=f'browse_dataset_{os.getpid()}')
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    os.makedirs(args.output_dir, exist_ok=True)
    written = 0
    for idx in range(min(args.num, len(dataset))):
        item = dataset[idx]
        inputs, sample = item['inputs'], item['data_samples']
        img = inputs.permute(1, 2, 0).numpy() if hasattr(inputs, 'permute') else np.asarray(inputs)
        if img.ndim == 3 and img.shape[2] == 3:
            img = img[..., ::-1]  # the pipeline keeps OpenCV's BGR order; the visualizer wants RGB
        img_path = sample.metainfo.get('img_path', f'sample_{idx}')
        out_file = osp.join(args.output_dir, f'{idx:04d}_{osp.splitext(osp.basename(str(img_path)))[0]}.png')
        visualizer.add_datasample(osp.basename(str(img_path)), np.ascontiguousarray(img), sample,
                                  draw_gt=True, draw_pred=False, out_file=out_file)
        written += 1
    print(f'wrote {written} image(s) to {args.output_dir}')
    return 0
