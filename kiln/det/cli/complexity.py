"""``kiln complexity CONFIG [--shape H W]``: parameters and FLOPs per module (MMDetection's
``tools/analysis_tools/get_flops.py``), counted with ``torch.utils.flop_counter`` by :mod:`kiln.analysis`."""
from __future__ import annotations

import argparse

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``complexity`` sub-command."""
    from kiln.cli._common import add_cfg_options
    p = subparsers.add_parser(
        'complexity', help='count parameters and FLOPs of a model, per module',
        description='Build the config\'s model (random weights) and count its parameters, FLOPs (multiply-adds, '
                    'MMEngine convention) and activations for one image of H x W, per module (depth <= 3). '
                    'Detectors run their tensor forward (two-stage: RPN proposals and RoI head outputs); '
                    'NMS and other non-arithmetic steps count 0 FLOPs.')
    p.add_argument('config', help='config file')
    p.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                   help='input size (default: the test pipeline\'s Resize scale as a landscape canvas, rounded '
                        'up to 32; else 800 x 1344)')
    p.add_argument('--show-arch', action='store_true', help='also print the module tree with counts')
    p.add_argument('--json', action='store_true', help='print only a JSON line with the totals')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from kiln.analysis import get_model_complexity_info
    from kiln.cli._common import CLIError, load_config
    from kiln.registry import MODELS, init_default_scope
    cfg = load_config(args.config, args.cfg_options, command='complexity')
    if cfg.get('model') is None:
        raise CLIError(f'config {args.config!r} has no "model"')
    init_default_scope(cfg.get('default_scope', 'kiln.det'))
    if args.shape is not None:
        h, w = args.shape
        if h <= 0 or w <= 0:
            raise CLIError(f'--shape must be two positive integers H W, got {args.shape}')
    else:
        from kiln.det.deploy.onnx_export import default_input_size
        try:
            h, w = default_input_size(cfg)
        except ValueError:
            h, w = 800, 1344
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    backbone = model_cfg.get('backbone')
    if isinstance(backbone, dict) and isinstance(backbone.get('init_cfg'), dict) and \
            backbone['init_cfg'].get('type') == 'Pretrained':
        backbone['init_cfg'] = None  # counting needs no weights (and no download)
    model = MODELS.build(model_cfg).eval()
    x = torch.randn(1, 3, h, w)
    inputs: tuple = (x,)
    if hasattr(model, 'rpn_head') or hasattr(model, 'roi_head'):
        from kiln.det.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                             batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
        inputs = (x, [sample])
    info = get_model_complexity_info(model, inputs=inputs, show_table=not args.json, show_arch=args.show_arch)
    if args.json:
        print(json.dumps(dict(model=type(model).__name__, shape=[h, w], flops=info['flops'],
                              params=info['params'], activations=info['activations'])))
        return 0
    print(f'{type(model).__name__}, input 1 x 3 x {h} x {w}')
    print(info['out_table'])
    if args.show_arch:
        print(info['out_arch'])
    print(f'FLOPs (multiply-adds): {info["flops_str"]}   parameters: {info["params_str"]}   '
          f'activations: {info["activations_str"]}')
    return 0
