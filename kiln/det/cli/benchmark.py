"""``kiln benchmark CONFIG CHECKPOINT [--backend torch|onnxruntime]``: inference latency and throughput
(MMDetection's ``tools/analysis_tools/benchmark.py``).

Two figures per backend, one image at a time after ``--warmup`` untimed images:

* ``model``: the network with its post-processing on an already loaded and preprocessed image (torch:
  ``model.test_step`` on the pipeline's output; onnxruntime: ``session.run`` on the resized, padded image);
* ``end_to_end``: from the image file to the predictions in original-image pixels (decode, resize, normalise,
  network, post-processing, rescale; masks pasted).

Latencies are wall-clock (``time.perf_counter``), reported as median and 90th percentile in milliseconds, with
images/s = timed images / summed time.
"""
from __future__ import annotations

import argparse
import glob
import os
import os.path as osp
import time
from typing import Any, Callable, Sequence

__all__ = ['add_parser', 'run', 'summarize']

BACKENDS = ('torch', 'onnxruntime')


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``benchmark`` sub-command."""
    from kiln.cli._common import add_cfg_options
    p = subparsers.add_parser(
        'benchmark', help='measure inference latency (median, p90) and images/s',
        description='Time inference one image at a time on the config\'s test images (or --images): the model '
                    'alone on preprocessed inputs, and end to end from the file. The onnxruntime backend runs '
                    '--onnx FILE, or exports the checkpoint to a temporary file first (--img-size).')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--backend', choices=BACKENDS, default='torch', help='inference backend (default torch)')
    p.add_argument('--num-images', type=int, default=50, help='timed images (default 50; images are reused '
                                                              'cyclically when there are fewer)')
    p.add_argument('--warmup', type=int, default=5, help='untimed images first (default 5)')
    p.add_argument('--images', help='folder or glob of images (default: the config\'s test dataset)')
    p.add_argument('--onnx', help='exported model for --backend onnxruntime (default: export to a temp file)')
    p.add_argument('--img-size', nargs=2, type=int, metavar=('H', 'W'),
                   help='input size when exporting for onnxruntime (see kiln export)')
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads for both backends (torch.set_num_threads / intra_op_num_threads; default: '
                        'torch\'s current setting)')
    p.add_argument('--device', default='cpu', help="torch device (default 'cpu')")
    p.add_argument('--json', action='store_true', help='print the report as one JSON line')
    add_cfg_options(p)
    p.set_defaults(func=run)
    return p


def summarize(times_s: Sequence[float]) -> dict[str, float]:
    """``dict(median_ms, p90_ms, mean_ms, images_per_s)`` of per-image times in seconds."""
    import numpy as np
    t = np.asarray(times_s, dtype=np.float64) * 1000.0
    return dict(median_ms=round(float(np.median(t)), 3), p90_ms=round(float(np.percentile(t, 90)), 3),
                mean_ms=round(float(t.mean()), 3), images_per_s=round(float(len(t) / (t.sum() / 1000.0)), 3))


def _timed(fn: Callable[[Any], Any], items: Sequence[Any], warmup: int, num: int,
           sync: Callable[[], None] = lambda: None) -> list[float]:
    for i in range(warmup):
        fn(items[i % len(items)])
    sync()
    times = []
    for i in range(num):
        start = time.perf_counter()
        fn(items[i % len(items)])
        sync()
        times.append(time.perf_counter() - start)
    return times


def _image_paths(args: argparse.Namespace, cfg: Any) -> list[str]:
    from kiln.cli._common import CLIError
    if args.images:
        if osp.isdir(args.images):
            from kiln.det.apis import list_images
            paths = list_images(args.images)
        else:
            paths = sorted(glob.glob(args.images, recursive=True))
        if not paths:
            raise CLIError(f'--images {args.images!r} matches no image')
        return paths
    from kiln.registry import DATASETS
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader or not loader.get('dataset'):
        raise CLIError('the config has no test_dataloader.dataset; pass --images')
    try:
        dataset = DATASETS.build(loader['dataset'])
        n = min(len(dataset), max(args.num_images, 1) + args.warmup)
        paths = [dataset.get_data_info(i)['img_path'] for i in range(n)]
    except Exception as e:  # a missing data root etc.: say which and how to go around it
        raise CLIError(f'cannot read the test dataset\'s images ({type(e).__name__}: {e}); pass --images') from e
    if not paths:
        raise CLIError('the test dataset is empty; pass --images')
    return paths


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from kiln.cli._common import CLIError, load_config
    from kiln.registry import init_default_scope
    if args.num_images < 1 or args.warmup < 0:
        raise CLIError('--num-images must be >= 1 and --warmup >= 0')
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise CLIError(f'checkpoint file {args.checkpoint!r} does not exist')
    cfg = load_config(args.config, args.cfg_options, command='benchmark')
    init_default_scope(cfg.get('default_scope', 'kiln.det'))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    paths = _image_paths(args, cfg)
    report: dict[str, Any] = dict(backend=args.backend, num_images=args.num_images, warmup=args.warmup,
                                  threads=threads)
    if args.backend == 'torch':
        from kiln.dataset import pseudo_collate
        from kiln.det.apis import DetInferencer
        inferencer = DetInferencer(cfg, args.checkpoint, device=args.device, show_progress=False)
        device = inferencer.device
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else (lambda: None)
        prepared = [inferencer.prepare(p) for p in paths[:min(len(paths), args.num_images + args.warmup)]]
        model = inferencer.model

        def model_only(data: dict) -> Any:
            with torch.inference_mode():
                return model.test_step(pseudo_collate([data]))

        report['model'] = summarize(_timed(model_only, prepared, args.warmup, args.num_images, sync))
        report['end_to_end'] = summarize(_timed(lambda p: inferencer.predict([p]), paths, args.warmup,
                                                args.num_images, sync))
        report['device'] = str(device)
    else:
        try:
            import numpy as np

            from kiln.det.deploy import ORTDetector
            from kiln.det.deploy.onnx_export import export_onnx
        except ImportError as e:
            raise CLIError('--backend onnxruntime needs onnx and onnxruntime: pip install "kiln[deploy]"') from e
        onnx_file = args.onnx
        tmp = None
        if onnx_file is None:
            import tempfile
            tmp = tempfile.TemporaryDirectory(prefix='kiln_benchmark_')
            onnx_file = os.path.join(tmp.name, 'model.onnx')
            export_onnx(cfg, args.checkpoint, onnx_file, img_size=args.img_size)
        elif not osp.isfile(onnx_file):
            raise CLIError(f'--onnx file {onnx_file!r} does not exist')
        try:
            det = ORTDetector(onnx_file, providers=['CPUExecutionProvider'], num_threads=threads)
            prepared = [det.preprocess(p) for p in paths[:min(len(paths), args.num_images + args.warmup)]]
            report['model'] = summarize(_timed(
                lambda item: det.run(item[0][None], np.array([item[1]['img_shape']])), prepared, args.warmup,
                args.num_images))
            report['end_to_end'] = summarize(_timed(det, paths, args.warmup, args.num_images))
            report['input_size'] = list(det.input_size)
        finally:
            if tmp is not None:
                tmp.cleanup()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f'backend {report["backend"]}, {args.num_images} images (+{args.warmup} warm-up), {threads} threads')
    print(f'{"":12s} {"median ms":>10s} {"p90 ms":>10s} {"images/s":>10s}')
    for key in ('model', 'end_to_end'):
        s = report[key]
        print(f'{key:12s} {s["median_ms"]:10.2f} {s["p90_ms"]:10.2f} {s["images_per_s"]:10.2f}')
    return 0
