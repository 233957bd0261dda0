"""``kiln convert voc2coco|yolo2coco|coco2yolo|labelme2coco SRC DST``: convert annotation formats.

* ``voc2coco``: SRC = VOC folder (Annotations/, JPEGImages/, ImageSets/Main/*.txt) -> DST/annotations/
  instances_<split>.json and DST/images/<split> (link to JPEGImages).
* ``yolo2coco``: SRC = data.yaml or its folder -> DST/annotations/instances_<split>.json, DST/images/<split>.
* ``coco2yolo``: SRC = COCO json (with --img-dir) or COCO folder -> DST/data.yaml, DST/labels/<split>/*.txt,
  DST/images/<split>.
* ``labelme2coco``: SRC = folder of LabelMe json files and images -> DST/annotations/instances_<split>.json.

Images are linked (symbolic links), never copied or re-encoded; ``--no-link`` writes annotations only.
The output folder is a dataset ``kiln check-data --data DST`` and ``kiln train --data DST`` read directly.
"""
from __future__ import annotations

import argparse

from kiln.cli._common import CLIError

__all__ = ['add_parser', 'run']

KINDS = ('voc2coco', 'yolo2coco', 'coco2yolo', 'labelme2coco')


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``convert`` sub-command."""
    p = subparsers.add_parser('convert', help='convert annotations (voc2coco, yolo2coco, coco2yolo, labelme2coco)',
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('kind', choices=KINDS, help='conversion')
    p.add_argument('src', help='source dataset (folder or file, see above)')
    p.add_argument('dst', help='output folder')
    p.add_argument('--classes', nargs='+', help='class names in id order (voc2coco, labelme2coco; default: '
                   'every name found, sorted)')
    p.add_argument('--img-dir', help='coco2yolo with a json SRC: the folder its file_name entries are in')
    p.add_argument('--split', help='split name (labelme2coco: default train; coco2yolo with a json SRC: '
                   'default from the file name)')
    p.add_argument('--no-link', action='store_true', help='do not link the images into DST')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the converter and print what it wrote and what it skipped."""
    from kiln.det.datasets import converters
    link = not args.no_link
    try:
        if args.kind == 'voc2coco':
            summary = converters.voc2coco(args.src, args.dst, classes=args.classes, link_images=link)
        elif args.kind == 'yolo2coco':
            summary = converters.yolo2coco(args.src, args.dst, link_images=link)
        elif args.kind == 'coco2yolo':
            summary = converters.coco2yolo(args.src, args.dst, img_dir=args.img_dir, split=args.split,
                                           link_images=link)
        else:
            summary = converters.labelme2coco(args.src, args.dst, classes=args.classes,
                                              split=args.split or 'train', link_images=link)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        raise CLIError(f'{args.kind}: {e}') from e
    classes = summary.get('classes') or []
    print(f'{args.kind}: {len(classes)} classes {classes[:10]}{"..." if len(classes) > 10 else ""}')
    for split, info in summary['splits'].items():
        print(f'  {split}: ' + ', '.join(f'{k}={v}' for k, v in info.items()))
    if summary['skipped']:
        print(f'  skipped {len(summary["skipped"])}:')
        for line in summary['skipped']:
            print(f'    {line}')
    return 0
