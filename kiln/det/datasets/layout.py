"""Recognise a dataset folder's layout (COCO, Pascal VOC or YOLO) and write the dataset configs for its splits.

Used by ``kiln check-data --data PATH``, ``kiln data-stats --data PATH`` and zero-config training
(``kiln train --data PATH``).
"""
from __future__ import annotations

import glob
import json
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ['detect_layout', 'FORMATS']

FORMATS = ('yolo', 'voc', 'coco')
_SPLIT_WORDS = (('trainval', 'trainval'), ('train', 'train'), ('val', 'val'), ('valid', 'val'), ('test', 'test'))


def detect_layout(path: str, format: str | None = None) -> dict[str, Any]:
    """Find out how the dataset at ``path`` is stored and describe its splits as dataset configs.

    Recognised (checked in this order, unless ``format`` names one):

    * ``'yolo'``: ``path`` is a ``data.yaml`` (or a folder holding ``data.yaml`` / ``dataset.yaml``) in the
      Ultralytics layout; classes from its ``names``; splits = its ``train`` / ``val`` / ``test`` keys.
    * ``'voc'``: ``path`` (or ``path/VOC2007``, ``path/VOC2012``) holds ``Annotations/``, ``JPEGImages/`` and
      ``ImageSets/Main/<split>.txt``; classes = the sorted ``<name>`` values of every xml; splits = the id
      lists found (``train``, ``val``, ``trainval``, ``test``).
    * ``'coco'``: ``path`` is a COCO json, or holds COCO jsons (``annotations/*.json`` or ``*.json``); the split
      is read from the file name (``instances_train2017.json`` -> ``train``; ``valid`` counts as ``val``) and
      the image folder is the first of ``<stem suffix>`` (``train2017``), ``images/<stem suffix>``, ``<split>``,
      ``images/<split>``, ``images``, ``.`` (relative to the dataset root) that holds the first listed image;
      classes = the category names in id order. Of several jsons for a split, the shortest name wins
      (``instances_train2017.json`` over ``instances_seg_train2017.json``).

    Returns:
        ``dict(format, root (absolute), classes (tuple of str), splits={split: dataset config dict})``, each
        config ready for ``DATASETS.build`` once a ``pipeline`` is added (``data_root`` is absolute).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: none of the layouts matches (the message says what was looked for), or ``format`` is
            unknown.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'dataset path {path!r} does not exist')
    if format is not None and format not in FORMATS:
        raise ValueError(f'unknown dataset format {format!r}; expected one of {FORMATS}')
    path = osp.abspath(path)
    for fmt, finder in (('yolo', _yolo), ('voc', _voc), ('coco', _coco)):
        if format in (None, fmt):
            found = finder(path)
            if found is not None:
                return found
    raise ValueError(
        f'{path}: no dataset layout recognised{f" for format {format!r}" if format else ""}. Expected one of: '
        'YOLO (data.yaml with names/train/val, images/ + labels/), VOC (Annotations/, JPEGImages/, '
        'ImageSets/Main/<split>.txt), COCO (a json with images/annotations/categories, e.g. '
        'annotations/instances_train.json, with its images beside it). See docs/own_data.md')


# ------------------------------------------------------------------------------------------------- YOLO
def _yolo(path: str) -> dict | None:
    from .yolo import read_data_yaml
    if osp.isfile(path):
        yaml_file = path if path.endswith(('.yaml', '.yml')) else None
    else:
        yaml_file = next((osp.join(path, n) for n in ('data.yaml', 'dataset.yaml', 'data.yml')
                          if osp.isfile(osp.join(path, n))), None)
    if yaml_file is None:
        return None
    data = read_data_yaml(yaml_file)
    root = osp.dirname(yaml_file)
    splits = {split: dict(type='YOLODataset', data_root=root, ann_file=osp.basename(yaml_file), split=split,
                          metainfo=dict(classes=tuple(data['names'])))
              for split in ('train', 'val', 'test') if data.get(split)}
    return dict(format='yolo', root=root, classes=tuple(data['names']), splits=splits)


# ------------------------------------------------------------------------------------------------- VOC
def _voc(path: str) -> dict | None:
    if not osp.isdir(path):
        return None
    candidates = [path] + [osp.join(path, d) for d in ('VOC2007', 'VOC2012', 'VOCdevkit/VOC2007')]
    for root in candidates:
        if all(osp.isdir(osp.join(root, d)) for d in ('Annotations', 'JPEGImages')):
            break
    else:
        return None
    lists = {}
    for split in ('train', 'val', 'trainval', 'test'):
        rel = f'ImageSets/Main/{split}.txt'
        if osp.isfile(osp.join(root, rel)):
            lists[split] = rel
    if not lists:
        raise ValueError(f'{root}: VOC layout (Annotations/, JPEGImages/) but no ImageSets/Main/'
                         '{train,val,trainval,test}.txt id list; write one image id (file stem) per line')
    names: set[str] = set()
    for xml_file in sorted(glob.glob(osp.join(root, 'Annotations', '*.xml'))):
        try:
            tree = ET.parse(xml_file)
        except ET.ParseError:
            continue  # check-data reports it
        names.update((o.findtext('name') or '').strip() for o in tree.getroot().findall('object'))
    names.discard('')
    classes = tuple(sorted(names))
    splits = {split: dict(type='VOCDataset', data_root=root, ann_file=rel, data_prefix=dict(sub_data_root=''),
                          metainfo=dict(classes=classes))
              for split, rel in lists.items()}
    return dict(format='voc', root=root, classes=classes, splits=splits)


# ------------------------------------------------------------------------------------------------- COCO
def _split_of(stem: str) -> tuple[str, str] | None:
    """``('train', 'train2017')`` for ``instances_train2017``: the split and the name part that holds it."""
    parts = stem.replace('-', '_').split('_')
    for part in reversed(parts):
        low = part.lower()
        for word, split in _SPLIT_WORDS:
            if low.startswith(word) and (low == word or low[len(word):].isdigit()):
                return split, part
    return None


def _is_coco(json_file: str) -> dict | None:
    try:
        if osp.getsize(json_file) > 2 ** 31:
            return None
        with open(json_file, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and all(k in data for k in ('images', 'annotations', 'categories')):
        return data
    return None


def _coco(path: str) -> dict | None:
    if osp.isfile(path):
        jsons, root = [path], osp.dirname(path)
        if osp.basename(root) == 'annotations':
            root = osp.dirname(root)
    else:
        root = path
        jsons = sorted(glob.glob(osp.join(path, 'annotations', '*.json')) + glob.glob(osp.join(path, '*.json')))
    by_split: dict[str, tuple[str, str, dict]] = {}
    for json_file in sorted(jsons, key=lambda p: (len(osp.basename(p)), p)):
        stem = osp.splitext(osp.basename(json_file))[0]
        split, part = _split_of(stem) or ('train', stem)
        if split in by_split:
            continue
        data = _is_coco(json_file)
        if data is not None:
            by_split[split] = (json_file, part, data)
    if not by_split:
        return None
    classes: tuple[str, ...] | None = None
    splits = {}
    for split, (json_file, part, data) in by_split.items():
        names = tuple(c['name'] for c in sorted(data['categories'], key=lambda c: c['id']))
        classes = classes or names
        img_dir = _find_image_dir(root, data, part, split)
        splits[split] = dict(type='CocoDataset', data_root=root, ann_file=osp.relpath(json_file, root),
                             data_prefix=dict(img=img_dir), metainfo=dict(classes=names))
    return dict(format='coco', root=root, classes=classes, splits=splits)


def _find_image_dir(root: str, data: dict, part: str, split: str) -> str:
    first = next((img.get('file_name') for img in data['images'] if img.get('file_name')), None)
    candidates = [part, f'images/{part}', split, f'images/{split}', 'images', '']
    for cand in dict.fromkeys(candidates):
        folder = osp.join(root, cand)
        if first is None:
            if cand and osp.isdir(folder):
                return cand + '/'
        elif osp.isfile(osp.join(folder, first)):
            return cand + '/' if cand else ''
    tried = ', '.join(repr(c or '.') for c in dict.fromkeys(candidates))
    raise ValueError(f'{root}: cannot find the images of the {split!r} COCO json (looked for {first!r} in '
                     f'{tried}); pass an explicit config with data_prefix=dict(img=...)')
