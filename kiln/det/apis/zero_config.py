"""Zero-config training: ``kiln train --data PATH`` and :func:`train_on_folder`.

Point it at a dataset folder (COCO json + images, Pascal VOC, or an Ultralytics YOLO ``data.yaml``); it detects the
layout (:func:`kiln.det.datasets.layout.detect_layout`), writes a complete config that inherits from one of kiln's
recipes, stores the fully resolved config as ``<work_dir>/config.py``, trains, and evaluates on the held-out split
with a per-class AP table (``CocoMetric(classwise=True)``).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import os.path as osp
import statistics
import sys
import time
import traceback
import warnings
from typing import Any

__all__ = ['MODELS', 'build_zero_config', 'default_work_dir', 'similar_class_names', 'train_on_folder',
           'train_on_folder_cli']

#: Model names accepted by ``model=`` / ``--model``.
MODELS = ('atss', 'fcos', 'retinanet', 'faster-rcnn', 'mask-rcnn')

# Bases of the generated config. CPU: the slim ResNet-18 recipes that train from scratch in minutes on 2 cores
# (retinanet has no shipped slim recipe: the R50 model base with the same slim backbone/neck overrides as the
# others). CUDA: MMDetection's standard ResNet-50 FPN models, 1x schedule, COCO dataset base layout.
_CPU_BASES = {
    'atss': ['mmdet::atss/atss_r18-slim_fpn_bccd.py'],
    'fcos': ['mmdet::fcos/fcos_r18-slim_fpn_bccd.py'],
    'faster-rcnn': ['mmdet::faster_rcnn/faster-rcnn_r18-slim_fpn_bccd.py'],
    'mask-rcnn': ['mmdet::mask_rcnn/mask-rcnn_r18-slim_fpn_balloon.py'],
    'retinanet': ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
                  'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'],
}
_GPU_MODEL_BASE = {'atss': 'atss_r50_fpn', 'fcos': 'fcos_r50_fpn', 'retinanet': 'retinanet_r50_fpn',
                   'faster-rcnn': 'faster-rcnn_r50_fpn', 'mask-rcnn': 'mask-rcnn_r50_fpn'}
# fcos_r50_fpn.py (like MMDetection's FCOS configs) names no backbone weights, unlike the other three R50 bases:
# the CUDA recipe starts its (frozen-stem, frozen-BN) ResNet-50 from the torchvision ImageNet weights as they do.
_GPU_FCOS_BACKBONE = dict(init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
_SLIM_RETINANET = dict(
    backbone=dict(depth=18, base_channels=32, out_indices=(1, 2, 3), frozen_stages=-1, norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, start_level=0, add_extra_convs=False, num_outs=3),
    bbox_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(strides=[8, 16, 32])))

CPU_TARGET_ITERS = 320  # iterations of a default CPU run (the slim recipes' budget: ~5-9 min on 2 cores)
GPU_MIN_ITERS = 3000
VAL_FRACTION = 0.15
SPLIT_SEED = 0


def _held_out_split(n: int, seed: int = SPLIT_SEED, fraction: float = VAL_FRACTION) -> tuple[list, list]:
    """``(train_indices, val_indices)``: a seeded random ``fraction`` of ``range(n)`` (at least 1) held out."""
    import numpy as np
    if n < 2:
        raise ValueError(f'the train split has {n} image(s): at least 2 are needed to hold one out for validation')
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(n * fraction)))
    return sorted(int(i) for i in perm[n_val:]), sorted(int(i) for i in perm[:n_val])


def similar_class_names(classes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Groups of class names that differ only in case, surrounding spaces, ``_`` / ``-`` / space (``'RBC'`` and
    ``'rbc'``, ``'traffic light'`` and ``'traffic_light'``), in the order of ``classes``. A layout whose names are
    read from the annotations (VOC ``<name>``, COCO categories) makes each spelling a class of its own."""
    groups: dict[str, list[str]] = {}
    for name in classes:
        key = ' '.join(name.strip().lower().replace('_', ' ').replace('-', ' ').split())
        groups.setdefault(key, []).append(name)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def default_work_dir(data: str) -> str:
    """``work_dirs/zero_config_<folder name>``: the work dir of a zero-config run on ``data`` when none is given.

    The folder is ``data`` itself, or for a file (``data.yaml``, a COCO json) the folder holding it (the one above
    it when that is ``annotations/``); known before the layout is detected, so that an error in the layout has a
    log file there too.
    """
    path = osp.abspath(data)
    if osp.isfile(path):
        path = osp.dirname(path)
        if osp.basename(path) == 'annotations':
            path = osp.dirname(path)
    return osp.join('work_dirs', f'zero_config_{osp.basename(path)}')


def _log_early_failure(work_dir: str, messages: list[str], exc: BaseException) -> str | None:
    """Record a failure of a zero-config run that happened before the Runner (and its log file) existed: write
    ``<work_dir>/<timestamp>/<timestamp>.log`` as the Runner would, with the data warnings held back so far
    (``messages``; logged at WARNING, so also printed on the terminal now) and the error at ERROR with its origin
    and notes (log file only: the traceback, or ``kiln train``'s error line, shows it on the terminal). A note
    ``(log file: <path>)`` is added to ``exc``. Returns the path, or None when the work dir is not writable."""
    from kiln.logging import close_logger, describe_exception, get_logger, log_to_files

    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    path = osp.join(work_dir, stamp, f'{stamp}.log')
    try:
        logger = get_logger('kiln', log_file=path, file_mode='a')
    except OSError:
        return None
    try:
        for message in messages:
            logger.warning(f'kiln train --data: {message}')
        frames = traceback.extract_tb(exc.__traceback__)
        log_to_files(logger, logging.ERROR, f'kiln train --data failed before training started: '
                     f'{describe_exception(exc)}', origin=frames[-1] if frames else None)
    finally:
        close_logger(logger)
    exc.add_note(f'(log file: {path})')
    return path


def _set_num_classes(node: Any, num_classes: int, path: str = 'model') -> list[str]:
    """Set every ``num_classes`` key under ``node`` (the RPN's class-agnostic head excepted); returns the paths."""
    done = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = num_classes
                done.append(f'{path}.num_classes')
            elif key != 'rpn_head':
                done += _set_num_classes(value, num_classes, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            done += _set_num_classes(value, num_classes, f'{path}[{i}]')
    return done


def _scan_train_split(ds_cfg: dict) -> tuple[int, list[int], bool]:
    """``(number of records, long image sides, any mask annotation)`` of the unfiltered train split."""
    from kiln.registry import DATASETS, init_default_scope
    init_default_scope('kiln.det')
    ds = DATASETS.build(dict(ds_cfg, pipeline=[]))
    records = ds.full_data_list
    sides, has_mask = [], False
    for r in records:
        if r.get('width') and r.get('height'):
            sides.append(max(int(r['width']), int(r['height'])))
        has_mask = has_mask or any(inst.get('mask') is not None for inst in r.get('instances', ()))
    return len(records), sides, has_mask


def build_zero_config(data: str, model: str | None = None, epochs: int | None = None, img_size: int | None = None,
                      work_dir: str | None = None, device: str | None = None,
                      cfg_options: dict | None = None) -> tuple[Any, dict]:
    """Build the config of a zero-config run without training (see :func:`train_on_folder` for the arguments).

    Returns:
        ``(cfg, info)``: the resolved :class:`kiln.config.Config` (also written to ``<work_dir>/config.py``, with
        the inheriting source beside it as ``<work_dir>/zero_config_source.py``) and a dict describing the
        choices: ``format``, ``classes``, ``model``, ``recipe``, ``device``, ``img_size``, ``epochs``,
        ``iters_per_epoch``, ``train_images``, ``val_split``, ``eval_split``, ``num_classes_keys``, ``warnings``
        (what looked wrong in the data, e.g. class names that differ only in case: see
        :func:`similar_class_names`; each is also issued as a ``UserWarning``, and :func:`train_on_folder` logs
        them into the run's log file).
    """
    import torch

    from kiln.config import Config
    from kiln.config.pretty import format_python

    from ..datasets.layout import detect_layout

    layout = detect_layout(data)
    classes = tuple(layout['classes'])
    if not classes:
        raise ValueError(f'{data}: no class names found (empty annotations?)')
    splits = dict(layout['splits'])
    if 'train' not in splits and 'trainval' in splits:
        splits['train'] = splits['trainval']
    if 'train' not in splits:
        raise ValueError(f'{layout["root"]}: no train split found (found {sorted(splits)})')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device not in ('cpu', 'cuda') and not str(device).startswith('cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    gpu = device != 'cpu'

    data_warnings = []
    similar = similar_class_names(classes)
    if similar:
        shown = ', '.join(' / '.join(repr(n) for n in g) for g in similar)
        data_warnings.append(f"{layout['root']}: {len(similar)} group(s) of class names differ only in case, spaces, "
                             f"'_' or '-' and are trained as separate classes: {shown} ({len(classes)} classes in "
                             'all); if each group is one class, use one spelling in the annotation files')
    for line in data_warnings:
        warnings.warn(line, stacklevel=2)
    n_total, sides, has_mask = _scan_train_split(splits['train'])
    if model is None:
        model = 'mask-rcnn' if has_mask else 'atss'
    if model not in MODELS:
        raise ValueError(f'unknown model {model!r}; expected one of {MODELS}')
    with_mask = model == 'mask-rcnn'
    if with_mask and not has_mask:
        raise ValueError(f"{layout['root']}: model 'mask-rcnn' needs instance masks (COCO polygons / RLE or YOLO "
                         "segments) but the train split has none; use --model atss|fcos|retinanet|faster-rcnn")

    # splits: train / held-out val / evaluation split
    train_ds = dict(splits['train'])
    if 'val' in splits:
        val_ds, val_split = dict(splits['val']), 'val'
        n_train = n_total
    else:
        train_idx, val_idx = _held_out_split(n_total)
        train_ds['indices'], val_ds = train_idx, dict(splits['train'], indices=val_idx)
        val_split, n_train = f'{len(val_idx)} of {n_total} train images (seed {SPLIT_SEED})', len(train_idx)
    eval_split = 'test' if 'test' in splits else 'val'

    # input size: long side of the median image, at most 512 px on CPU (multiple of 32, at least 256)
    if img_size is None:
        if gpu:
            scale = (1333, 800)
        else:
            median = statistics.median(sides) if sides else 640
            long_side = max(256, min(512, int(median) // 32 * 32))
            scale = (long_side, long_side * 3 // 4 // 32 * 32)
    else:
        if img_size < 32:
            raise ValueError(f'img_size must be at least 32 pixels, got {img_size}')
        scale = (img_size, max(32, img_size * 3 // 4))

    batch_size = 2 if gpu or n_train < 16 else 4
    iters_per_epoch = max(1, math.ceil(n_train / batch_size))
    if epochs is None:
        if gpu:
            epochs = min(100, max(12, math.ceil(GPU_MIN_ITERS / iters_per_epoch)))
        else:
            epochs = min(50, max(2, round(CPU_TARGET_ITERS / iters_per_epoch)))
    if epochs < 1:
        raise ValueError(f'epochs must be at least 1, got {epochs}')
    total_iters = epochs * iters_per_epoch

    if gpu:
        bases = [f'mmdet::_base_/models/{_GPU_MODEL_BASE[model]}.py',
                 f'mmdet::_base_/datasets/{"coco_instance" if with_mask else "coco_detection"}.py',
                 'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']
    else:
        bases = list(_CPU_BASES[model])

    meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
    load_ann = dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)
    train_pipeline = [dict(type='LoadImageFromFile'), load_ann,
                      dict(type='Resize', scale=scale, keep_ratio=True),
                      dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=scale, keep_ratio=True), load_ann,
                     dict(type='PackDetInputs', meta_keys=meta_keys)]
    num_workers = 2

    def loader(ds: dict, train: bool) -> dict:
        ds = dict(ds, pipeline=train_pipeline if train else test_pipeline)
        if train:
            ds['filter_cfg'] = dict(filter_empty_gt=True, min_size=0)
        else:
            ds['test_mode'] = True
        return dict(_delete_=True, batch_size=batch_size if train else 1, num_workers=num_workers,
                    persistent_workers=num_workers > 0, drop_last=False,
                    sampler=dict(type='DefaultSampler', shuffle=train), dataset=ds)

    def evaluator(ds: dict) -> dict:
        ev = dict(_delete_=True, type='CocoMetric', metric=['bbox', 'segm'] if with_mask else 'bbox',
                  classwise=True)
        if ds['type'] == 'CocoDataset':  # the json itself (only the evaluated images count)
            ev['ann_file'] = osp.join(ds['data_root'], ds['ann_file'])
        return ev

    eval_ds = splits['test'] if eval_split == 'test' else val_ds
    # LinearLR reaches the full lr at step end - 1 (MMEngine's rule): end=1 would keep the lr at start_factor for
    # the whole run, so the warm-up of a tiny run (fewer than 10 iterations) spans 2 iterations
    warmup = min(500 if gpu else 100, max(2, total_iters // 5))
    milestones = ([max(1, round(epochs * 8 / 12)), max(1, round(epochs * 11 / 12))] if gpu
                  else [max(1, round(epochs * 7 / 8))])
    lr = (0.02 if model in ('faster-rcnn', 'mask-rcnn') else 0.01)
    overrides: dict[str, Any] = dict(
        model=(dict(_SLIM_RETINANET) if (model == 'retinanet' and not gpu) else
               dict(backbone=dict(_GPU_FCOS_BACKBONE)) if (model == 'fcos' and gpu) else {}),
        train_dataloader=loader(train_ds, True),
        val_dataloader=loader(val_ds, False),
        test_dataloader=loader(eval_ds, False),
        val_evaluator=evaluator(val_ds),
        test_evaluator=evaluator(eval_ds),
        train_cfg=dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs),
        param_scheduler=[dict(type='LinearLR', start_factor=0.01 if not gpu else 0.001, by_epoch=False, begin=0,
                              end=warmup),
                         dict(type='MultiStepLR', begin=0, end=epochs, by_epoch=True, milestones=milestones,
                              gamma=0.1)],
        optim_wrapper=dict(_delete_=True, type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=lr, momentum=0.9, weight_decay=0.0001),
                           clip_grad=dict(max_norm=35, norm_type=2)),
        auto_scale_lr=dict(enable=gpu, base_batch_size=16),
        default_hooks=dict(
            logger=dict(interval=min(10, iters_per_epoch)),
            checkpoint=dict(_delete_=True, type='CheckpointHook', interval=epochs, max_keep_ckpts=1)),
        randomness=dict(seed=0),
    )
    source = f'# Generated by kiln zero-config training for {layout["root"]} ({layout["format"]} layout)\n'
    source += f'_base_ = {bases!r}\n\n' + format_python(overrides)

    work_dir = work_dir or default_work_dir(data)
    os.makedirs(work_dir, exist_ok=True)
    source_file = osp.join(work_dir, 'zero_config_source.py')
    with open(source_file, 'w', encoding='utf-8') as f:
        f.write(source)
    cfg = Config.fromfile(source_file)
    keys = _set_num_classes(cfg.model, len(classes))
    if not keys:
        raise RuntimeError(f'{bases[0]}: the model config has no num_classes key to set')
    cfg.pop('tta_model', None)  # the recipes' TTA scales belong to their own datasets
    cfg.pop('tta_pipeline', None)
    cfg.pop('tta_img_scales', None)
    if not gpu:
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = osp.abspath(work_dir)
    cfg.dump(osp.join(work_dir, 'config.py'))
    info = dict(format=layout['format'], root=layout['root'], classes=classes, model=model, recipe=bases[0],
                device=device, img_size=scale, epochs=epochs, batch_size=batch_size,
                iters_per_epoch=iters_per_epoch, train_images=n_train, val_split=val_split,
                eval_split=eval_split, num_classes_keys=keys, config_file=osp.join(work_dir, 'config.py'),
                warnings=data_warnings)
    return cfg, info


def train_on_folder(data: str, model: str | None = None, epochs: int | None = None, img_size: int | None = None,
                    work_dir: str | None = None, device: str | None = None, cfg_options: dict | None = None,
                    progress: bool = False) -> dict[str, float]:
    """Train a detector on a dataset folder with no config to write, then evaluate it on the held-out split.

    Steps:

    1. **Layout**: :func:`~kiln.det.datasets.layout.detect_layout` recognises a YOLO ``data.yaml``, a Pascal VOC
       folder or COCO jsons; the classes and the ``train`` / ``val`` / ``test`` splits come from it (``trainval``
       stands in for a missing ``train``).
    2. **Splits**: without a ``val`` split, a seeded (``SPLIT_SEED`` = 0) random 15 % of the train images (at
       least one) becomes val through the datasets' ``indices``; the rest trains. The model is evaluated on
       ``test`` when there is one, otherwise on val (printed as such).
    3. **Recipe**: CPU (or ``device='cpu'``): the slim ResNet-18 (half width) FPN recipes that train from scratch
       on 2 cores (``configs/atss/atss_r18-slim_fpn_bccd.py``, ``configs/fcos/...``, ``configs/faster_rcnn/...``,
       ``configs/mask_rcnn/...``; RetinaNet: the R50 model base with the same slim overrides). CUDA: the standard
       ResNet-50 FPN model bases with the 1x schedule (ImageNet-pretrained backbone), batch 2 per GPU,
       ``auto_scale_lr`` on. ``model=None`` picks ``'mask-rcnn'`` when the train annotations carry masks, else
       ``'atss'`` (the demo's detector: it learns boxes from scratch faster than FCOS, see docs/demo.md). Every ``num_classes`` of the model (the RPN's excepted) is set to ``len(classes)``.
    4. **Input size**: ``img_size`` S resizes each image (aspect kept) to fit S x 0.75 S. Default on CPU: the
       median long side of the train images rounded down to a multiple of 32, clamped to 256-512 px (BCCD's
       640x480 -> 512x384); on CUDA MMDetection's (1333, 800).
    5. **Schedule**: batch 4 on CPU (2 for fewer than 16 train images, and on CUDA). Default epochs on CPU:
       ``round(320 / iterations per epoch)`` clamped to 2-50 (about 320 iterations, the slim recipes' budget of
       5-10 minutes: BCCD 205 images -> 6 epochs, balloon 61 -> 20); on CUDA at least 12 epochs and at least 3000
       iterations (at most 100 epochs). SGD (lr 0.01 for FCOS/RetinaNet, 0.02 for the R-CNNs), linear warm-up
       over a fifth of the run (at least 2 iterations, so that the full lr is reached; at most 100 on CPU, 500 on
       CUDA), x0.1 at 7/8 of the epochs (CPU) or at 8/12 and 11/12 (CUDA), gradient clipping at norm 35;
       validation once, at the end.
    6. **Config**: the generated source inherits from the recipe (``_base_``) and is kept as
       ``<work_dir>/zero_config_source.py``; the resolved config is written as ``<work_dir>/config.py``, so
       ``kiln train <work_dir>/config.py`` repeats the run (paths absolute, held-out split as ``indices``, seed 0:
       on CPU with the same thread count, bit-identical weights, losses and metrics, from any directory) and
       ``kiln test <work_dir>/config.py CKPT`` evaluates a checkpoint on the evaluation split.
    7. **Train and evaluate**: trains, evaluates with ``CocoMetric(classwise=True)`` (box AP; also mask AP for
       Mask R-CNN) and logs the per-class AP table.

    Args:
        data: dataset folder or file (``data.yaml``, a COCO json).
        model: one of :data:`MODELS` or None (see step 3).
        epochs: number of epochs (default: step 5).
        img_size: long side in pixels of the training / evaluation input (default: step 4).
        work_dir: where the config, logs and checkpoints go (default ``work_dirs/zero_config_<folder name>``,
            see :func:`default_work_dir`).
        device: ``'cpu'`` or ``'cuda'``: selects the recipe (default: CUDA when available). The Runner itself
            places the model on CUDA whenever CUDA is available.
        cfg_options: ``{dotted key: value}`` merged into the config after it is generated (and before it is
            written), as ``--cfg-options`` does; e.g. ``{'train_dataloader.dataset.indices': 8}`` for a smoke
            test.
        progress: show the live progress display for evaluation (only on a terminal).

    Returns:
        The metrics of the evaluation split, e.g. ``{'coco/bbox_mAP': 0.41, 'coco/bbox_mAP_50': 0.7,
        'coco/RBC_precision': ...}``.

    Warnings and errors: the warnings raised while the config is made (class names that differ only in case, what
    the train split's dataset drops or ignores: bad boxes, unknown names, sizes ...) are logged through the run's
    logger once it exists (terminal and log file, once each; the Runner does not repeat them when it builds the
    same data). An error raised before the Runner exists (layout detection, no class names, a train split that
    cannot be built ...) is written, with the warnings held back so far, to
    ``<work_dir>/<timestamp>/<timestamp>.log`` as the Runner would (see :func:`_log_early_failure`); errors
    raised later are in the Runner's log file. Either way the exception gets a note ``(log file: <path>)``.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: no layout recognised, no train split, fewer than 2 train images without a val split,
            unknown ``model``, ``'mask-rcnn'`` on data without masks, ``epochs < 1``, a train split with no
            usable box / known class name (and what the datasets raise, see docs/own_data.md).
    """
    from kiln.hooks import Hook
    from kiln.registry.build_context import config_root
    from kiln.runner import Runner

    work_dir = work_dir or default_work_dir(data)
    with warnings.catch_warnings(record=True) as caught:  # held back: logged once the run's logger exists
        try:
            cfg, info = build_zero_config(data, model, epochs, img_size, work_dir, device, cfg_options)
        except Exception as e:
            _log_early_failure(work_dir, [str(w.message) for w in caught], e)
            raise
    early = list(dict.fromkeys([*info['warnings'], *(str(w.message) for w in caught)]))
    print(f"kiln train --data: {info['format']} layout at {info['root']}, {len(info['classes'])} classes, "
          f"{info['train_images']} train images; model {info['model']} from {info['recipe']} on {info['device']}; "
          f"input {info['img_size'][0]}x{info['img_size'][1]}, {info['epochs']} epochs x "
          f"{info['iters_per_epoch']} iterations (batch {info['batch_size']}); val = {info['val_split']}; "
          f"config written to {info['config_file']}", flush=True)
    if info['eval_split'] == 'val':
        print('kiln train --data: the dataset has no test split: the final evaluation is on the val split',
              flush=True)
    if progress:
        from kiln.logging.progress import add_progress_hook
        add_progress_hook(cfg, enabled=True)

    class _KeepValMetrics(Hook):
        priority = 'LOWEST'

        def __init__(self) -> None:
            self.metrics: dict = {}

        def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
            self.metrics = dict(metrics or {})

    keep = _KeepValMetrics()
    from kiln.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'kiln.det'))
    with config_root(cfg):
        try:
            runner = Runner.from_cfg(cfg)
        except Exception as e:
            _log_early_failure(cfg.work_dir, early, e)
            raise
        runner.register_hook(keep)
        for line in early:  # terminal and the run's log file (the Runner skips them when it builds the data)
            runner.logger.warning(f'kiln train --data: {line}')
        try:
            runner.train()
            metrics = runner.test() if info['eval_split'] == 'test' else keep.metrics
        except Exception as e:  # logged in the Runner's log file (Runner.train / test)
            e.add_note(f'(log file: {osp.join(runner.log_dir, runner.timestamp + ".log")})')
            raise
    return {k: float(v) if isinstance(v, (int, float)) else v for k, v in metrics.items()}


def train_on_folder_cli(args: argparse.Namespace) -> int:
    """Entry point of the ``kiln.zero_config`` group, called by ``kiln train --data PATH`` with its parsed
    arguments (``data``, ``model``, ``epochs``, ``img_size``, ``work_dir``, ``cfg_options``, ``no_progress``,
    ``launcher``); returns the exit status: 0, or 2 after one line ``kiln train: error: <message> [notes] (log
    file: <path>)`` on stderr for a ``FileNotFoundError`` / ``ValueError`` (bad data or arguments; the error is in the
    log file too, see :func:`train_on_folder`). Other exceptions propagate with their traceback."""
    if getattr(args, 'launcher', 'none') != 'none':
        print('kiln train: error: --data does not support distributed launch; run `kiln train '
              '<work_dir>/config.py --launcher ...` with the written config instead', file=sys.stderr)
        return 2
    try:
        metrics = train_on_folder(args.data, model=args.model, epochs=args.epochs, img_size=args.img_size,
                                  work_dir=args.work_dir, cfg_options=args.cfg_options,
                                  progress=not getattr(args, 'no_progress', False))
    except (FileNotFoundError, ValueError) as e:  # bad data or arguments: one line (as `kiln train CONFIG`)
        notes = ' '.join(n.strip() for n in getattr(e, '__notes__', ()))
        print(f'kiln train: error: {e}{" " + notes if notes else ""}', file=sys.stderr)
        return 2
    main = {k: v for k, v in metrics.items() if k.endswith(('_mAP', '_mAP_50'))}
    print('kiln train --data: ' + ', '.join(f'{k}={v:.3f}' for k, v in main.items()), flush=True)
    return 0
