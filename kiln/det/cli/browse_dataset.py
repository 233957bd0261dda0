"""``kiln browse-dataset CONFIG [--output-dir DIR] [--stage train|val|test] [-n N]``: draw what the model sees.

Runs the stage's dataset pipeline (augmentations included) on the first N samples and writes one PNG per
sample with the packed image and its ground truth (boxes, class names, masks) drawn by ``DetLocalVisualizer``
(MMDetection's ``tools/analysis_tools/browse_dataset.py``).

Test pipelines laid out like MMDetection's load the annotations after ``Resize`` so that the ground truth stays in
original-image pixels (for evaluation). For such a pipeline (a ``LoadAnnotations`` after a ``*Resize`` step) the
boxes are multiplied by the sample's ``scale_factor`` and the masks resized to ``img_shape`` before drawing, so
they sit on the objects of the resized image that is drawn.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from kiln.cli._common import CLIError, add_cfg_options, load_config

__all__ = ['add_parser', 'run', 'gt_in_original_frame']


def gt_in_original_frame(dataset: object) -> bool:
    """True when the pipeline of ``dataset`` (or of the dataset it wraps) loads the annotations after a resize
    step (a transform whose class name ends in ``Resize``), i.e. its ground truth is in original-image pixels."""
    while getattr(dataset, 'pipeline', None) is None and getattr(dataset, 'dataset', None) is not None:
        dataset = dataset.dataset  # RepeatDataset, ClassBalancedDataset, ...
    resized = False
    for t in getattr(getattr(dataset, 'pipeline', None), 'transforms', []):
        name = type(t).__name__
        if name.endswith('Resize'):
            resized = True
        elif name == 'LoadAnnotations' and resized:
            return True
    return False


def _to_drawn_frame(sample: object, img_hw: tuple[int, int]) -> None:
    """Scale ``sample.gt_instances`` (boxes by ``scale_factor``, masks to ``img_hw``) from original-image pixels
    to the drawn image, in place."""
    import torch
    gt = getattr(sample, 'gt_instances', None)
    sf = sample.metainfo.get('scale_factor')
    if gt is None or sf is None or len(gt) == 0:
        return
    if 'bboxes' in gt:
        boxes = torch.as_tensor(gt.bboxes, dtype=torch.float32)
        gt.bboxes = boxes * boxes.new_tensor([sf[0], sf[1], sf[0], sf[1]])
    if 'masks' in gt and hasattr(gt.masks, 'resize'):
        gt.masks = gt.masks.resize(tuple(img_hw))


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
    original_frame = gt_in_original_frame(dataset)
    for idx in range(min(args.num, len(dataset))):
        item = dataset[idx]
        inputs, sample = item['inputs'], item['data_samples']
        img = inputs.permute(1, 2, 0).numpy() if hasattr(inputs, 'permute') else np.asarray(inputs)
        if img.ndim == 3 and img.shape[2] == 3:
            img = img[..., ::-1]  # the pipeline keeps OpenCV's BGR order; the visualizer wants RGB
        if original_frame:
            _to_drawn_frame(sample, img.shape[:2])
        img_path = sample.metainfo.get('img_path', f'sample_{idx}')
        out_file = osp.join(args.output_dir, f'{idx:04d}_{osp.splitext(osp.basename(str(img_path)))[0]}.png')
        visualizer.add_datasample(osp.basename(str(img_path)), np.ascontiguousarray(img), sample,
                                  draw_gt=True, draw_pred=False, out_file=out_file)
        written += 1
    print(f'wrote {written} image(s) to {args.output_dir}')
    return 0
