"""``kiln export CONFIG CHECKPOINT --format onnx``: write a deployable ONNX detector (MMDeploy's job).

See :mod:`kiln.det.deploy.onnx_export` for the graph's inputs, outputs and metadata, and docs/deploy.md.
"""
from __future__ import annotations

import argparse
import os.path as osp

__all__ = ['add_parser', 'run']

FORMATS = ('onnx',)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``export`` sub-command."""
    from kiln.cli._common import add_cfg_options
    p = subparsers.add_parser(
        'export', help='export a detector to ONNX (post-processing inside)',
        description='Export CHECKPOINT to ONNX: input uint8 (N, H, W, 3) BGR + img_shape (N, 2), normalisation, '
                    'score threshold, NMS and top-k inside the graph; outputs boxes (xyxy pixels of the input), '
                    'scores, labels (and mask probabilities for Mask R-CNN). Class names, mean/std, input size '
                    'and thresholds are stored in the model\'s metadata. Run it with kiln.det.deploy.ORTDetector.')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint: kiln training checkpoint, kiln publish file or MMDetection '
                                      'checkpoint')
    p.add_argument('--format', default='onnx', help="output format (only 'onnx')")
    p.add_argument('--out', help='output file (default: the checkpoint path with .onnx)')
    p.add_argument('--img-size', nargs=2, type=int, metavar=('H', 'W'),
                   help='fixed network input size (default: from the test pipeline\'s Resize scale, rounded up '
                        'to 32: a landscape H=short, W=long canvas)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset version (>= 16, default 17)')
    p.add_argument('--dynamic-batch', action='store_true', help='dynamic batch axis (default: batch 1)')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Export and print the written file's path."""
    from kiln.cli._common import CLIError, describe_error, load_config
    if args.format.lower() not in FORMATS:
        raise CLIError(f'--format {args.format!r} is not supported; supported: {", ".join(FORMATS)}')
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise CLIError(f'checkpoint file {args.checkpoint!r} does not exist')
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise CLIError('kiln export needs the onnx package: pip install "kiln[deploy]"') from e
    cfg = load_config(args.config, args.cfg_options, command='export')
    out = args.out or osp.splitext(args.checkpoint)[0] + '.onnx'
    from kiln.det.deploy.onnx_export import export_onnx
    try:
        meta = export_onnx(cfg, args.checkpoint, out, img_size=args.img_size, opset=args.opset,
                           dynamic_batch=args.dynamic_batch)
    except (ValueError, NotImplementedError, KeyError, FileNotFoundError) as e:
        raise CLIError(describe_error(e)) from e
    h, w = meta['input_size']
    print(f'{meta["model_type"]} -> ONNX opset {args.opset}, input uint8 ({"N" if args.dynamic_batch else 1}, '
          f'{h}, {w}, 3) BGR, outputs {", ".join(meta["outputs"])}, {len(meta["classes"])} classes')
    print(out)
    return 0
