"""Annotation format converters: Pascal VOC, YOLO (Ultralytics) and LabelMe to COCO, and COCO to YOLO.

Every converter reads the source once, writes the target annotations and returns a summary dict
(``images``, ``annotations``, ``skipped``: a list of ``'file [where]: reason'``). Images are never re-encoded:
the target layout points at them through a symbolic link (``link_images=True``, so that the output folder is a
complete dataset that :func:`~kiln.det.datasets.layout.detect_layout` recognises) or not at all.

Box conventions: COCO ``bbox`` is ``[x, y, w, h]`` in pixels; VOC corners are 1-based (``x - 1``, as
MMDetection's ``tools/dataset_converters/pascal_voc.py`` does); YOLO boxes are ``cx cy w h`` normalised by the
image size. A VOC ``<difficult>1</difficult>`` object becomes ``iscrowd=1`` (ignored in training and matched
without penalty in COCO evaluation, as VOC treats difficult objects).

References: https://cocodataset.org/#format-data, https://docs.ultralytics.com/datasets/detect/,
https://github.com/wkentaro/labelme (JSON fields ``shapes``, ``imagePath``, ``imageHeight``, ``imageWidth``).
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Any, Sequence

from .checks import read_image_header

__all__ = ['voc2coco', 'yolo2coco', 'coco2yolo', 'labelme2coco']


def _write_json(data: dict, path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f)


def _link(target: str, link: str) -> None:
    """Make ``link`` a symbolic link to the folder ``target`` (replacing an older link)."""
    os.makedirs(osp.dirname(osp.abspath(link)), exist_ok=True)
    if osp.islink(link):
        os.remove(link)
    elif osp.exists(link):
        raise FileExistsError(f'{link} exists and is not a link; choose an empty output folder')
    os.symlink(osp.abspath(target), link, target_is_directory=True)


def _polygon_area(polygons: Sequence[Sequence[float]], height: int, width: int) -> float:
    """Pixel area of the union of ``polygons`` (pycocotools, as COCO's own ``area`` values)."""
    from pycocotools import mask as mask_utils
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def _categories(classes: Sequence[str]) -> list[dict]:
    return [dict(id=i + 1, name=str(name), supercategory='none') for i, name in enumerate(classes)]


# ------------------------------------------------------------------------------------------------ VOC
def voc2coco(src: str, dst: str, classes: Sequence[str] | None = None, splits: Sequence[str] | None = None,
             link_images: bool = True) -> dict:
    """Convert a Pascal VOC folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``) to COCO.

    Writes ``dst/annotations/instances_<split>.json`` per id list (``file_name`` = ``<id>.jpg``) and, with
    ``link_images``, ``dst/images/<split>`` -> ``src/JPEGImages``.

    Args:
        src: the VOC folder (e.g. ``VOCdevkit/VOC2007`` or ``data/bccd``).
        dst: output folder.
        classes: category names in id order (ids 1..n); default: every ``<name>`` found, sorted.
        splits: id lists to convert (default every one of train/val/trainval/test present).

    Returns:
        ``dict(classes, splits={split: dict(json, images, annotations)}, skipped=[...])``; objects of other
        classes and degenerate boxes are skipped and listed.

    Raises:
        FileNotFoundError: no ``Annotations/`` or no id list.
    """
    if not osp.isdir(osp.join(src, 'Annotations')):
        raise FileNotFoundError(f'{src}: no Annotations/ folder (not a VOC layout)')
    splits = list(splits or [s for s in ('train', 'val', 'trainval', 'test')
                             if osp.isfile(osp.join(src, 'ImageSets', 'Main', f'{s}.txt'))])
    if not splits:
        raise FileNotFoundError(f'{src}: no ImageSets/Main/<split>.txt id list')
    parsed: dict[str, ET.Element] = {}

    def xml_of(img_id: str) -> ET.Element:
        if img_id not in parsed:
            parsed[img_id] = ET.parse(osp.join(src, 'Annotations', f'{img_id}.xml')).getroot()
        return parsed[img_id]

    ids_by_split = {}
    for split in splits:
        with open(osp.join(src, 'ImageSets', 'Main', f'{split}.txt'), encoding='utf-8') as f:
            ids_by_split[split] = [line.split()[0] for line in f if line.strip()]
    if classes is None:
        names = {(o.findtext('name') or '').strip() for ids in ids_by_split.values() for i in ids
                 for o in xml_of(i).findall('object')}
        classes = sorted(n for n in names if n)
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    summary: dict[str, Any] = dict(classes=list(classes), splits={}, skipped=[])
    for split, ids in ids_by_split.items():
        images, anns = [], []
        for img_index, img_id in enumerate(ids, start=1):
            root = xml_of(img_id)
            xml_name = f'{img_id}.xml'
            try:
                width, height = int(float(root.findtext('size/width'))), int(float(root.findtext('size/height')))
            except (TypeError, ValueError):
                width = height = 0
            if width <= 0 or height <= 0:
                size, problem = read_image_header(osp.join(src, 'JPEGImages', f'{img_id}.jpg'))
                if size is None:
                    summary['skipped'].append(f'{xml_name}: no <size> and {problem.message}')
                    continue
                width, height = size
            images.append(dict(id=img_index, file_name=f'{img_id}.jpg', width=width, height=height))
            for idx, obj in enumerate(root.findall('object')):
                name = (obj.findtext('name') or '').strip()
                if name not in cat_id:
                    summary['skipped'].append(f'{xml_name} [object #{idx}]: class {name!r} not in classes')
                    continue
                try:
                    x1, y1, x2, y2 = (float(obj.findtext(f'bndbox/{k}')) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                except (TypeError, ValueError):
                    summary['skipped'].append(f'{xml_name} [object #{idx}]: no numeric <bndbox>')
                    continue
                x1, y1 = x1 - 1, y1 - 1
                w, h = x2 - 1 - x1, y2 - 1 - y1
                if w <= 0 or h <= 0:
                    summary['skipped'].append(f'{xml_name} [object #{idx}]: degenerate box {[x1, y1, w, h]}')
                    continue
                difficult = (obj.findtext('difficult') or '0').strip() in ('1', '1.0')
                anns.append(dict(id=len(anns) + 1, image_id=img_index, category_id=cat_id[name],
                                 bbox=[x1, y1, w, h], area=w * h, iscrowd=int(difficult), segmentation=[]))
        out = osp.join(dst, 'annotations', f'instances_{split}.json')
        _write_json(dict(images=images, annotations=anns, categories=_categories(classes)), out)
        if link_images:
            _link(osp.join(src, 'JPEGImages'), osp.join(dst, 'images', split))
        summary['splits'][split] = dict(json=out, images=len(images), annotations=len(anns))
    return summary


# ------------------------------------------------------------------------------------------------ YOLO
def yolo2coco(src: str, dst: str, splits: Sequence[str] | None = None, link_images: bool = True) -> dict:
    """Convert a YOLO (Ultralytics) dataset to COCO: ``dst/annotations/instances_<split>.json`` per split.

    ``src`` is the ``data.yaml`` or its folder. Boxes are un-normalised with the image size read from each
    image header; a segment line (polygon) gives ``segmentation`` and its extent as ``bbox``. ``file_name`` is
    the image path relative to the split's image folder, and with ``link_images`` ``dst/images/<split>`` links
    to that folder (a split given as a ``.txt`` list: paths relative to the dataset root, linked as
    ``dst/images/<split>`` -> root).

    Returns:
        ``dict(classes, splits={split: dict(json, images, annotations)}, skipped=[...])``.

    Raises:
        FileNotFoundError / ValueError: no yaml, or a malformed label file (``file:line`` named).
    """
    from .yolo import YOLODataset, read_data_yaml, split_entry_path
    yaml_file = src if osp.isfile(src) else osp.join(src, 'data.yaml')
    data = read_data_yaml(yaml_file)
    names = data['names']
    summary: dict[str, Any] = dict(classes=list(names), splits={}, skipped=[])
    for split in splits or [s for s in ('train', 'val', 'test') if data.get(s)]:
        entry = data.get(split)
        entry = entry[0] if isinstance(entry, list) and len(entry) == 1 else entry
        image_root = data['root']
        if isinstance(entry, str):
            folder = split_entry_path(data, entry)
            if osp.isdir(folder):
                image_root = folder
        ds = YOLODataset(ann_file=yaml_file, split=split, metainfo=dict(classes=tuple(names)),
                         serialize_data=False)
        images, anns = [], []
        for i in range(len(ds)):
            rec = ds.get_data_info(i)
            img_id = i + 1
            images.append(dict(id=img_id, file_name=osp.relpath(rec['img_path'], image_root),
                               width=rec['width'], height=rec['height']))
            for inst in rec['instances']:
                x1, y1, x2, y2 = inst['bbox']
                w, h = x2 - x1, y2 - y1
                if w <= 0 or h <= 0:
                    summary['skipped'].append(f'{rec["img_path"]}: degenerate box {inst["bbox"]}')
                    continue
                polygons = [list(p) for p in inst.get('mask', [])]
                area = _polygon_area(polygons, rec['height'], rec['width']) if polygons else w * h
                anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=inst['bbox_label'] + 1,
                                 bbox=[x1, y1, w, h], area=area, iscrowd=0, segmentation=polygons))
        out = osp.join(dst, 'annotations', f'instances_{split}.json')
        _write_json(dict(images=images, annotations=anns, categories=_categories(names)), out)
        if link_images:
            _link(image_root, osp.join(dst, 'images', split))
        summary['splits'][split] = dict(json=out, images=len(images), annotations=len(anns))
    return summary


def coco2yolo(src: str, dst: str, img_dir: str | None = None, split: str | None = None,
              link_images: bool = True) -> dict:
    """Convert COCO annotations to the YOLO layout in ``dst`` (``data.yaml``, ``labels/<split>/*.txt``,
    ``images/<split>`` -> the image folder).

    Args:
        src: a COCO json, or a COCO dataset folder (every split found by
            :func:`~kiln.det.datasets.layout.detect_layout` is converted).
        dst: output folder.
        img_dir: image folder of the json (``file_name`` is relative to it); found like ``detect_layout``
            does when None.
        split: split name for a single json (default: read from the file name, e.g. ``instances_val2017``).

    Class ids are 0..n-1 in category-id order. ``iscrowd`` annotations (no YOLO equivalent) and degenerate
    boxes are skipped and listed; boxes are clipped to the image. Images without annotations get an empty
    label file (a background image).

    Returns:
        ``dict(classes, yaml, splits={split: dict(images, labels)}, skipped=[...])``.
    """
    from .layout import detect_layout
    if img_dir is not None and osp.isfile(src):
        layout_splits = {split or _split_name(src): (src, img_dir)}
    else:
        layout = detect_layout(src, format='coco')
        layout_splits = {}
        for name, cfg in layout['splits'].items():
            ann = cfg['ann_file'] if osp.isabs(cfg['ann_file']) else osp.join(cfg['data_root'], cfg['ann_file'])
            layout_splits[split or name] = (ann, osp.join(cfg['data_root'], cfg['data_prefix']['img']))
    names: list[str] | None = None
    summary: dict[str, Any] = dict(splits={}, skipped=[])
    for split_name, (ann_file, images_dir) in layout_splits.items():
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
        cats = sorted(data['categories'], key=lambda c: c['id'])
        split_names = [c['name'] for c in cats]
        if names is not None and split_names != names:
            raise ValueError(f'{ann_file}: categories {split_names[:5]}... differ from the other split\'s')
        names = split_names
        cls_of = {c['id']: i for i, c in enumerate(cats)}
        lines: dict[Any, list[str]] = {img['id']: [] for img in data['images']}
        size = {img['id']: (img['width'], img['height']) for img in data['images']}
        for ann in data['annotations']:
            where = f'{osp.basename(ann_file)} [annotation {ann.get("id")}]'
            if ann.get('iscrowd', 0):
                summary['skipped'].append(f'{where}: iscrowd')
                continue
            w_img, h_img = size[ann['image_id']]
            x, y, w, h = (float(v) for v in ann['bbox'])
            x1, y1 = max(x, 0.0), max(y, 0.0)
            x2, y2 = min(x + w, w_img), min(y + h, h_img)
            if x2 <= x1 or y2 <= y1:
                summary['skipped'].append(f'{where}: degenerate or outside box {ann["bbox"]}')
                continue
            lines[ann['image_id']].append(f'{cls_of[ann["category_id"]]} {(x1 + x2) / 2 / w_img:.6f} '
                                          f'{(y1 + y2) / 2 / h_img:.6f} {(x2 - x1) / w_img:.6f} '
                                          f'{(y2 - y1) / h_img:.6f}')
        for img in data['images']:
            label = osp.join(dst, 'labels', split_name, osp.splitext(img['file_name'])[0] + '.txt')
            os.makedirs(osp.dirname(label), exist_ok=True)
            with open(label, 'w', encoding='utf-8') as f:
                f.write('\n'.join(lines[img['id']]) + ('\n' if lines[img['id']] else ''))
        if link_images:
            _link(images_dir, osp.join(dst, 'images', split_name))
        summary['splits'][split_name] = dict(images=len(data['images']),
                                             labels=sum(len(v) for v in lines.values()))
    import yaml
    yaml_file = osp.join(dst, 'data.yaml')
    content = dict(path='.', **{s: f'images/{s}' for s in layout_splits}, names=dict(enumerate(names or [])))
    with open(yaml_file, 'w', encoding='utf-8') as f:
        yaml.safe_dump(content, f, sort_keys=False, allow_unicode=True)
    summary.update(classes=names, yaml=yaml_file)
    return summary


def _split_name(json_file: str) -> str:
    from .layout import _split_of
    found = _split_of(osp.splitext(osp.basename(json_file))[0])
    return found[0] if found else 'train'


# ------------------------------------------------------------------------------------------------ LabelMe
def labelme2coco(src: str, dst: str, classes: Sequence[str] | None = None, split: str = 'train',
                 link_images: bool = True) -> dict:
    """Convert a folder of LabelMe json files (one per image) to ``dst/annotations/instances_<split>.json``.

    ``polygon`` shapes give ``segmentation`` and their extent as ``bbox``; ``rectangle`` shapes give a box (and
    its 4-corner polygon); other shape types (circle, line, point ...) are skipped and listed. ``file_name``
    is the json's ``imagePath`` relative to ``src``; with ``link_images`` ``dst/images/<split>`` -> ``src``.

    Args:
        classes: category names in id order; default every label found, sorted.

    Returns:
        ``dict(classes, splits={split: dict(json, images, annotations)}, skipped=[...])``.

    Raises:
        FileNotFoundError: no json file in ``src``.
    """
    files = sorted(glob.glob(osp.join(src, '*.json')))
    records = []
    for path in files:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if isinstance(data, dict) and 'shapes' in data and 'imagePath' in data:
            records.append((path, data))
    if not records:
        raise FileNotFoundError(f'{src}: no LabelMe json (with "shapes" and "imagePath")')
    if classes is None:
        classes = sorted({s['label'] for _, d in records for s in d['shapes']})
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    summary: dict[str, Any] = dict(classes=list(classes), splits={}, skipped=[])
    images, anns = [], []
    for img_id, (path, data) in enumerate(records, start=1):
        file_name = osp.normpath(data['imagePath']).replace('\\', '/')
        width, height = data.get('imageWidth'), data.get('imageHeight')
        if not width or not height:
            size, problem = read_image_header(osp.join(src, file_name))
            if size is None:
                summary['skipped'].append(f'{osp.basename(path)}: no imageWidth/imageHeight and {problem.message}')
                continue
            width, height = size
        images.append(dict(id=img_id, file_name=file_name, width=int(width), height=int(height)))
        for idx, shape in enumerate(data['shapes']):
            where = f'{osp.basename(path)} [shape #{idx}]'
            label, kind = shape.get('label'), shape.get('shape_type') or 'polygon'
            if label not in cat_id:
                summary['skipped'].append(f'{where}: label {label!r} not in classes')
                continue
            pts = [(float(x), float(y)) for x, y in shape.get('points', [])]
            if kind == 'rectangle' and len(pts) == 2:
                (ax, ay), (bx, by) = pts
                x1, x2, y1, y2 = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
                polygon = [x1, y1, x2, y1, x2, y2, x1, y2]
            elif kind == 'polygon' and len(pts) >= 3:
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
                polygon = [v for p in pts for v in p]
            else:
                summary['skipped'].append(f'{where}: shape type {kind!r} with {len(pts)} points is not converted')
                continue
            if x2 <= x1 or y2 <= y1:
                summary['skipped'].append(f'{where}: degenerate shape')
                continue
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat_id[label],
                             bbox=[x1, y1, x2 - x1, y2 - y1], iscrowd=0, segmentation=[polygon],
                             area=_polygon_area([polygon], int(height), int(width))))
    out = osp.join(dst, 'annotations', f'instances_{split}.json')
    _write_json(dict(images=images, annotations=anns, categories=_categories(classes)), out)
    if link_images:
        _link(src, osp.join(dst, 'images', split))
    summary['splits'][split] = dict(json=out, images=len(images), annotations=len(anns))
    return summary
