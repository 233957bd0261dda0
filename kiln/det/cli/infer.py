"""``kiln infer CONFIG CHECKPOINT INPUTS...``: run a detector on images, folders, globs and videos.

Writes one JSON of predictions per image under ``OUT_DIR/preds/`` and the drawing under ``OUT_DIR/vis/`` (PNG for
images, an annotated video for a video input). MMDetection's ``demo/image_demo.py`` / ``demo/video_demo.py`` and
Detectron2's ``demo/demo.py`` do the same jobs. ``--backend onnxruntime`` predicts with an ONNX file written by
``kiln export`` (:class:`kiln.det.deploy.ORTDetector`) instead of the PyTorch model; the outputs are the same.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
from typing import Any, Iterator

__all__ = ['add_parser', 'run', 'VIDEO_EXTENSIONS']

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``infer`` sub-command."""
    p = subparsers.add_parser(
        'infer', help='run a detector on images, folders, globs or videos',
        description='Predict with CHECKPOINT on INPUTS (image files, folders searched recursively, quoted glob '
                    'patterns, video files). Writes OUT_DIR/preds/<name>.json (boxes xyxy pixels, labels, class '
                    'names, scores, scores_per_class, masks as COCO RLE) and OUT_DIR/vis/<name>.png; a video gives '
                    'OUT_DIR/preds/<name>/<frame>.json and the annotated OUT_DIR/vis/<name>.mp4.')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint: kiln training checkpoint, kiln publish file (.pth / '
                                      '.safetensors) or MMDetection checkpoint; with --backend onnxruntime the '
                                      '.onnx file written by kiln export')
    p.add_argument('inputs', nargs='+', help='image files, folders, glob patterns or video files')
    p.add_argument('--out-dir', default='outputs', help='output folder (default: ./outputs)')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='keep (save and draw) detections with a score above this (default 0.3)')
    p.add_argument('--batch-size', type=int, default=1, help='images (or video frames) per forward pass')
    p.add_argument('--device', default=None, help="device, e.g. 'cpu', 'cuda:0' (default: CUDA if available)")
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--backend', choices=('torch', 'onnxruntime'), default='torch',
                   help='torch (default): the config\'s model with CHECKPOINT; onnxruntime: the exported .onnx '
                        'file CHECKPOINT (preprocessing and class names from its metadata; the config only gives '
                        'the drawing options)')
    p.set_defaults(func=run)
    return p


def _expand(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Split the command-line inputs into (images, videos); folders and globs are expanded.

    Raises:
        CLIError: an input matches nothing.
    """
    from kiln.cli._common import CLIError
    from kiln.det.apis.inferencer import IMG_EXTENSIONS, list_images
    images: list[str] = []
    videos: list[str] = []

    def add(path: str) -> None:
        ext = osp.splitext(path)[1].lower()
        if ext in VIDEO_EXTENSIONS:
            videos.append(path)
        elif ext in IMG_EXTENSIONS:
            images.append(path)
        else:
            raise CLIError(f'input {path!r} is neither an image ({", ".join(IMG_EXTENSIONS)}) nor a video '
                           f'({", ".join(VIDEO_EXTENSIONS)})')

    for arg in inputs:
        if osp.isdir(arg):
            found = list_images(arg) + sorted(
                osp.join(d, f) for d, _, fs in os.walk(arg) for f in fs if osp.splitext(f)[1].lower()
                in VIDEO_EXTENSIONS)
            if not found:
                raise CLIError(f'folder {arg!r} holds no image or video file')
            for path in found:
                add(path)
        elif osp.isfile(arg):
            add(arg)
        elif glob.has_magic(arg):
            matches = sorted(p for p in glob.glob(arg, recursive=True) if osp.isfile(p))
            if not matches:
                raise CLIError(f'glob {arg!r} matches no file')
            for path in matches:
                add(path)
        else:
            raise CLIError(f'input {arg!r} does not exist')
    return images, videos


def _filtered(pred: dict, score_thr: float) -> dict:
    keep = [i for i, s in enumerate(pred['scores']) if s > score_thr]
    return {k: [v[i] for i in keep] if isinstance(v, list) else v for k, v in pred.items()}


def _write_json(path: str, record: dict) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f)


def _frames(path: str) -> Iterator[Any]:
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def run(args: argparse.Namespace) -> int:
    """Build the :class:`~kiln.det.apis.DetInferencer` and predict every input (see the module docstring)."""
    from kiln.cli._common import CLIError
    if args.batch_size < 1:
        raise CLIError(f'--batch-size must be >= 1, got {args.batch_size}')
    if not osp.isfile(args.config):
        raise CLIError(f'config file {args.config!r} does not exist')
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise CLIError(f'checkpoint file {args.checkpoint!r} does not exist')
    images, videos = _expand(args.inputs)

    from kiln.det.apis.inferencer import DetInferencer, iter_batches, pred_to_dict
    if getattr(args, 'backend', 'torch') == 'onnxruntime':
        inferencer: Any = _ORTInferencer(args.config, args.checkpoint, device=args.device)
    else:
        inferencer = DetInferencer(args.config, args.checkpoint, device=args.device, show_progress=False)
    classes = inferencer.dataset_meta.get('classes')
    names = DetInferencer._names(images)
    preds_dir, vis_dir = osp.join(args.out_dir, 'preds'), osp.join(args.out_dir, 'vis')
    from kiln.logging.progress import track
    show = False if args.no_progress else None  # None: a rich bar on a terminal only, nothing in logs / pipes
    done = 0
    for batch in track(iter_batches(images, args.batch_size), total=len(images), description='images',
                       enabled=show if images else False, advance=len):
        for path, sample in zip(batch, inferencer.predict(batch)):
            name = names[done]
            done += 1
            record = dict(img_path=path, **_filtered(pred_to_dict(sample, classes), args.score_thr))
            _write_json(osp.join(preds_dir, name + '.json'), record)
            inferencer.visualize(path, sample, pred_score_thr=args.score_thr,
                                 out_file=osp.join(vis_dir, name + '.png'))
    for video in videos:
        count = _infer_video(inferencer, video, args, show, classes)
        print(f'{video}: {count} frames -> {osp.join(vis_dir, osp.splitext(osp.basename(video))[0] + ".mp4")}')
    print(f'{len(images)} image(s), {len(videos)} video(s): predictions in {preds_dir}, drawings in {vis_dir}')
    return 0


def _infer_video(inferencer: Any, video: str, args: argparse.Namespace, show: bool | None,
                 classes: Any) -> int:
    """Predict every frame of ``video``; writes ``preds/<stem>/<frame:06d>.json`` and ``vis/<stem>.mp4`` (same
    fps and size as the input, drawings of the frames), with a progress bar over the frames (``show``: see
    :func:`kiln.logging.progress.track`; no ETA when the container does not give the frame count). Returns the
    number of frames."""
    import cv2
    from kiln.cli._common import CLIError
    from kiln.det.apis.inferencer import iter_batches, pred_to_dict
    from kiln.logging.progress import track
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise CLIError(f'OpenCV cannot open video {video!r}')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    cap.release()
    stem = osp.splitext(osp.basename(video))[0]
    out_path = osp.join(args.out_dir, 'vis', stem + '.mp4')
    os.makedirs(osp.dirname(out_path), exist_ok=True)
    writer = None
    index = 0
    try:
        for frames in track(iter_batches(_frames(video), args.batch_size), total=total,
                            description=osp.basename(video), enabled=show, advance=len):
            for frame, sample in zip(frames, inferencer.predict(frames)):
                record = dict(img_path=video, frame=index,
                              **_filtered(pred_to_dict(sample, classes), args.score_thr))
                _write_json(osp.join(args.out_dir, 'preds', stem, f'{index:06d}.json'), record)
                drawn = inferencer.visualize(frame, sample, pred_score_thr=args.score_thr)
                if writer is None:
                    h, w = drawn.shape[:2]
                    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
                    if not writer.isOpened():
                        raise CLIError(f'OpenCV cannot write video {out_path!r} (mp4v codec)')
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                index += 1
    finally:
        if writer is not None:
            writer.release()
    if index == 0:
        raise CLIError(f'video {video!r} has no readable frame')
    return index


class _ORTInferencer:
    """The part of :class:`~kiln.det.apis.DetInferencer` that ``kiln infer`` uses (``dataset_meta``,
    ``predict``, ``visualize``), backed by :class:`kiln.det.deploy.ORTDetector` on an exported ``.onnx`` file.

    Predictions are :class:`~kiln.det.structures.DetDataSample` whose ``pred_instances`` hold the ORTDetector
    outputs as tensors: ``bboxes`` float32 (K, 4) xyxy pixels of the original image, ``scores``, ``labels`` int64
    and, for Mask R-CNN, ``masks`` bool (K, H, W). Class names come from the file's metadata, the drawing options
    (``visualizer`` colours, line width) from the config.

    Raises:
        CLIError: ``onnx_path`` is not an ``.onnx`` file, onnxruntime is not installed, or the file has no kiln
            metadata.
    """

    def __init__(self, config: str, onnx_path: str, device: str | None = None) -> None:
        from kiln.cli._common import CLIError
        if not onnx_path.lower().endswith('.onnx'):
            raise CLIError(f'--backend onnxruntime needs the .onnx file written by kiln export as CHECKPOINT, '
                           f'got {onnx_path!r}')
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise CLIError('--backend onnxruntime needs the onnxruntime package (pip install onnxruntime)') from exc
        from kiln.config import Config
        from kiln.det.deploy import ORTDetector
        providers = None
        if device is not None:
            providers = (['CUDAExecutionProvider', 'CPUExecutionProvider'] if str(device).startswith('cuda')
                         else ['CPUExecutionProvider'])
            providers = [p for p in providers if p in ort.get_available_providers()]
        try:
            self.detector = ORTDetector(onnx_path, providers=providers)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        self.cfg = Config.fromfile(config)
        self.dataset_meta: dict[str, Any] = dict(classes=self.detector.classes)
        from kiln.det.apis.inferencer import _config_classes
        from kiln.registry import init_default_scope
        init_default_scope(self.cfg.get('default_scope', 'kiln.det'))
        config_meta = _config_classes(self.cfg)  # the config dataset's palette, when its classes are the file's
        if config_meta.get('palette') and tuple(config_meta.get('classes') or ()) == self.detector.classes:
            self.dataset_meta['palette'] = config_meta['palette']
        self._visualizer: Any = None

    def predict(self, items: list) -> list:
        """One ``DetDataSample`` per image path / BGR (H, W, 3) uint8 array of ``items``."""
        import torch

        from kiln.det.structures import DetDataSample
        from kiln.structures import InstanceData
        batch_size = len(items) if self.detector.dynamic_batch else 1
        samples = []
        for item, result in zip(items, self.detector(list(items), batch_size=max(batch_size, 1))):
            pred = InstanceData(bboxes=torch.from_numpy(result['bboxes']),
                                scores=torch.from_numpy(result['scores']),
                                labels=torch.from_numpy(result['labels']))
            if 'masks' in result:
                pred.masks = torch.from_numpy(result['masks'])
            meta = dict(img_path=item) if isinstance(item, str) else {}
            sample = DetDataSample(metainfo=meta)
            sample.pred_instances = pred
            samples.append(sample)
        return samples

    def visualize(self, item: Any, sample: Any, pred_score_thr: float = 0.3, out_file: str | None = None) -> Any:
        """Draw ``sample``'s predictions (score > ``pred_score_thr``) on the image (path or BGR array) with
        :class:`~kiln.det.visualization.DetLocalVisualizer`; returns the RGB drawing (PNG in ``out_file``)."""
        import numpy as np
        if self._visualizer is None:
            from kiln.det.visualization import DetLocalVisualizer
            vis_cfg = dict(self.cfg.get('visualizer') or {})
            options = {k: vis_cfg[k] for k in ('bbox_color', 'text_color', 'mask_color', 'line_width', 'alpha')
                       if k in vis_cfg}
            self._visualizer = DetLocalVisualizer(name=f'ort_inferencer_{id(self)}', **options)
            self._visualizer.dataset_meta = self.dataset_meta
        if isinstance(item, np.ndarray):
            img = item if item.ndim == 3 else np.repeat(item[:, :, None], 3, axis=2)
        else:
            from kiln.det.datasets.file_io import get_bytes
            from kiln.det.datasets.transforms.loading import imfrombytes
            img = imfrombytes(get_bytes(item, None))
        rgb = np.ascontiguousarray(img[..., ::-1])
        name = osp.basename(item) if isinstance(item, str) else 'image'
        self._visualizer.add_datasample(name, rgb, sample, draw_gt=False, pred_score_thr=pred_score_thr,
                                        out_file=out_file)
        return self._visualizer.get_image()
