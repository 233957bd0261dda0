"""``kiln infer CONFIG CHECKPOINT INPUTS...``: run a detector on images, folders, globs and videos.

Writes one JSON of predictions per image under ``OUT_DIR/preds/`` and the drawing under ``OUT_DIR/vis/`` (PNG for
images, an annotated video for a video input). MMDetection's ``demo/image_demo.py`` / ``demo/video_demo.py`` and
Detectron2's ``demo/demo.py`` do the same jobs.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import sys
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
                                      '.safetensors) or MMDetection checkpoint')
    p.add_argument('inputs', nargs='+', help='image files, folders, glob patterns or video files')
    p.add_argument('--out-dir', default='outputs', help='output folder (default: ./outputs)')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='keep (save and draw) detections with a score above this (default 0.3)')
    p.add_argument('--batch-size', type=int, default=1, help='images (or video frames) per forward pass')
    p.add_argument('--device', default=None, help="device, e.g. 'cpu', 'cuda:0' (default: CUDA if available)")
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
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


class _Progress:
    """A ``rich`` progress bar over images / frames when stdout is a terminal (and not disabled), else silent."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if enabled and sys.stdout.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn('{task.description}'), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn())

    def __enter__(self) -> '_Progress':
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def task(self, description: str, total: int | None) -> Any:
        return self.bar.add_task(description, total=total) if self.bar is not None else None

    def advance(self, task: Any, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(task, n)


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
    inferencer = DetInferencer(args.config, args.checkpoint, device=args.device, show_progress=False)
    classes = inferencer.dataset_meta.get('classes')
    names = DetInferencer._names(images)
    preds_dir, vis_dir = osp.join(args.out_dir, 'preds'), osp.join(args.out_dir, 'vis')
    with _Progress(not args.no_progress) as progress:
        task = progress.task('images', len(images)) if images else None
        done = 0
        for batch in iter_batches(images, args.batch_size):
            for path, sample in zip(batch, inferencer.predict(batch)):
                name = names[done]
                done += 1
                record = dict(img_path=path, **_filtered(pred_to_dict(sample, classes), args.score_thr))
                _write_json(osp.join(preds_dir, name + '.json'), record)
                inferencer.visualize(path, sample, pred_score_thr=args.score_thr,
                                     out_file=osp.join(vis_dir, name + '.png'))
            progress.advance(task, len(batch))
        for video in videos:
            count = _infer_video(inferencer, video, args, progress, classes)
            print(f'{video}: {count} frames -> {osp.join(vis_dir, osp.splitext(osp.basename(video))[0] + ".mp4")}')
    print(f'{len(images)} image(s), {len(videos)} video(s): predictions in {preds_dir}, drawings in {vis_dir}')
    return 0


def _infer_video(inferencer: Any, video: str, args: argparse.Namespace, progress: _Progress,
                 classes: Any) -> int:
    """Predict every frame of ``video``; writes ``preds/<stem>/<frame:06d>.json`` and ``vis/<stem>.mp4`` (same
    fps and size as the input, drawings of the frames). Returns the number of frames."""
    import cv2
    from kiln.cli._common import CLIError
    from kiln.det.apis.inferencer import iter_batches, pred_to_dict
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
    task = progress.task(osp.basename(video), total)
    index = 0
    try:
        for frames in iter_batches(_frames(video), args.batch_size):
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
            progress.advance(task, len(frames))
    finally:
        if writer is not None:
            writer.release()
    if index == 0:
        raise CLIError(f'video {video!r} has no readable frame')
    return index
