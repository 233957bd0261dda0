"""``kiln check-data CONFIG|--data PATH``: list every problem of a dataset before training.

Reads every annotation and image header once (no decoding) and prints one line per problem with the file and
the index (image id, object, label line), then a summary. Exit status 0 when no error was found (warnings
allowed), 1 when there are errors, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from kiln.cli._common import CLIError, add_cfg_options, load_config

__all__ = ['add_parser', 'run', 'add_source_arguments', 'resolve_datasets']

STAGES = ('train', 'val', 'test')


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """``CONFIG`` / ``--data PATH`` / ``--format`` / ``--cfg-options`` (shared by check-data and data-stats)."""
    p.add_argument('config', nargs='?', help='config file whose {train,val,test}_dataloader datasets are read')
    p.add_argument('--data', metavar='PATH', help='a dataset folder or annotation file instead of a config: '
                   'COCO (json + images), VOC (Annotations/ + JPEGImages/ + ImageSets) or YOLO (data.yaml)')
    p.add_argument('--format', choices=('coco', 'voc', 'yolo'), help='with --data: the layout, when the '
                   'folder holds several (default: YOLO, then VOC, then COCO)')
    add_cfg_options(p)


def resolve_datasets(args: argparse.Namespace, stages: tuple[str, ...] = STAGES,
                     command: str = 'check-data') -> tuple[list[tuple[str, Any]], Any]:
    """``([(stage or split name, dataset config)], config or None)`` from ``CONFIG`` or ``--data``.

    Raises:
        CLIError: neither or both given, an unreadable config, or a folder of no known layout.
    """
    if (args.config is None) == (args.data is None):
        raise CLIError('give either a CONFIG file or --data PATH')
    if args.data is not None:
        from kiln.det.datasets.layout import detect_layout
        try:
            layout = detect_layout(args.data, args.format)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(str(e)) from e
        splits = dict(layout['splits'])
        if 'train' in splits and 'val' in splits:
            splits.pop('trainval', None)  # the union of the two: read once
        chosen = [(s, cfg) for s, cfg in splits.items() if s in stages or (s == 'trainval' and 'train' in stages)]
        return chosen or list(splits.items()), None
    cfg = load_config(args.config, args.cfg_options, command=command)
    from kiln.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'kiln'))
    found = [(s, cfg[f'{s}_dataloader']['dataset']) for s in stages
             if cfg.get(f'{s}_dataloader') and cfg[f'{s}_dataloader'].get('dataset')]
    if not found:
        raise CLIError(f'{args.config}: no {"/".join(s + "_dataloader" for s in stages)} with a dataset')
    return found, cfg


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``check-data`` sub-command."""
    p = subparsers.add_parser('check-data', help='list every problem of a dataset (images, boxes, classes)',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p)
    p.add_argument('--stage', choices=STAGES, action='append',
                   help='check only this dataloader / split (repeatable; default all)')
    p.add_argument('--no-images', action='store_true', help='do not open the images (annotations only)')
    p.add_argument('--json', metavar='FILE', help='also write the problems and counts to this JSON file')
    p.add_argument('--quiet', action='store_true', help='print errors and the summary only')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Check the datasets, print every problem and a summary; returns 1 when an error was found."""
    from kiln.det.datasets.checks import CheckReport, check_dataset, check_num_classes
    stages = tuple(args.stage or STAGES)
    datasets, cfg = resolve_datasets(args, stages, 'check-data')
    report = CheckReport()
    seen: set[str] = set()
    classes = None
    for name, ds_cfg in datasets:
        key = json.dumps(ds_cfg, sort_keys=True, default=str)
        if key in seen:  # val and test often share one dataset
            continue
        seen.add(key)
        part = check_dataset(ds_cfg, check_images=not args.no_images)
        print(f'[{name}] {", ".join(part.sources) or "?"}: {part.num_images} images, {part.num_instances} objects, '
              f'{len(part.errors)} errors, {len(part.warnings)} warnings')
        report.extend(part)
        if classes is None:
            classes = _classes_of(ds_cfg)
    if cfg is not None and cfg.get('model') is not None and classes:
        report.problems += check_num_classes(cfg['model'], classes, source=args.config)
    for problem in report.problems:
        if not args.quiet or problem.severity == 'error':
            print(problem)
    print(report.summary())
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(report.to_dict(), f, indent=1, default=str)
    return 1 if report.errors else 0


def _classes_of(ds_cfg: Any) -> tuple[str, ...] | None:
    from kiln.det.datasets.checks import _build_lazy, _leaf_dataset_cfgs
    for leaf in _leaf_dataset_cfgs(ds_cfg):
        try:
            classes = _build_lazy(leaf).metainfo.get('classes')
        except Exception:  # noqa: BLE001  (check_dataset already reported why)
            continue
        if classes:
            return tuple(classes)
    return None
