"""Helpers of ``CocoMetric``: building pycocotools ``COCO`` objects and COCO-format results."""
from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Sequence

import numpy as np

_STAT_INDEX = {'mAP': 0, 'mAP_50': 1, 'mAP_75': 2, 'mAP_s': 3, 'mAP_m': 4, 'mAP_l': 5}
_AR_INDEX = {'AR_s@1000': 9, 'AR_m@1000': 10, 'AR_l@1000': 11}


def coco_stat_index(item: str, proposal_nums: Sequence[int]) -> int:
    """Index into ``COCOeval.stats`` (pycocotools' 12-number bbox summary) of a metric item name."""
    if item in _STAT_INDEX:
        return _STAT_INDEX[item]
    if item in _AR_INDEX:
        return _AR_INDEX[item]
    n = int(item.split('@')[1])
    return 6 + list(proposal_nums).index(n)


def to_numpy(value: Any, dtype: Any) -> np.ndarray:
    """Tensor / array / list -> numpy array of ``dtype`` on the CPU."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _new_coco(dataset: dict) -> Any:
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco_api(ann_file: str, backend_args: dict | None = None, sort_categories: bool = False) -> Any:
    """A pycocotools ``COCO`` for ``ann_file`` (categories sorted by id if ``sort_categories``).

    Raises:
        FileNotFoundError: the file is missing. ValueError: it is not a COCO json.
    """
    from ...datasets.file_io import get_text
    try:
        dataset = json.loads(get_text(ann_file, backend_args))
    except json.JSONDecodeError as e:
        raise ValueError(f'{ann_file}: not valid json ({e})') from None
    if not isinstance(dataset, dict) or not all(k in dataset for k in ('images', 'annotations', 'categories')):
        raise ValueError(f'{ann_file}: not a COCO detection file (needs images, annotations, categories)')
    if sort_categories:
        dataset['categories'] = sorted(dataset['categories'], key=lambda c: c['id'])
    return _new_coco(dataset)


def build_coco_from_gt(gts: Sequence[dict], classes: Sequence[str]) -> tuple[Any, dict]:
    """A pycocotools ``COCO`` from per-image ground-truth dicts (``img_id``, ``height``, ``width``, ``anns``).

    ``anns``: ``dict(bbox=[x1, y1, x2, y2], bbox_label, ignore_flag)``; category ids are the labels; each image
    gets a new integer id (1, 2, ... in first-seen order; repeated ``img_id`` are evaluated once).

    Returns:
        (coco, id_map) with ``id_map`` = original ``img_id`` -> integer COCO image id.
    """
    images, annotations, id_map = [], [], {}
    for gt in gts:
        if gt['img_id'] in id_map:
            continue
        coco_id = len(id_map) + 1
        id_map[gt['img_id']] = coco_id
        images.append(dict(id=coco_id, width=gt['width'], height=gt['height'], file_name=str(gt['img_id'])))
        for ann in gt['anns']:
            x1, y1, x2, y2 = ann['bbox']
            w, h = x2 - x1, y2 - y1
            annotations.append(dict(id=len(annotations) + 1, image_id=coco_id, category_id=int(ann['bbox_label']),
                                    bbox=[x1, y1, w, h], area=w * h, iscrowd=int(bool(ann['ignore_flag']))))
    categories = [dict(id=i, name=name) for i, name in enumerate(classes)]
    return _new_coco(dict(images=images, annotations=annotations, categories=categories)), id_map


def det_results_to_coco(preds: Sequence[dict], cat_ids: Sequence[int], id_map: dict) -> list[dict]:
    """COCO result dicts (``image_id``, ``bbox`` xywh, ``score``, ``category_id``) from per-image predictions.

    Raises:
        ValueError: a label outside ``0..len(cat_ids)-1`` (names the image).
    """
    dets = []
    for pred in preds:
        image_id = id_map[pred['img_id']]
        boxes, scores, labels = pred['bboxes'], pred['scores'], pred['labels']
        if labels.size and (labels.min() < 0 or labels.max() >= len(cat_ids)):
            raise ValueError(f'CocoMetric: image {pred["img_id"]} has predicted labels outside 0..'
                             f'{len(cat_ids) - 1}: {sorted(set(labels.tolist()))[:10]}')
        xywh = boxes.astype(np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        for box, score, label in zip(xywh.tolist(), scores.tolist(), labels.tolist()):
            dets.append(dict(image_id=image_id, bbox=box, score=float(score), category_id=cat_ids[label]))
    return dets


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    fmt = lambda cells: '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'  # noqa: E731
    return '\n'.join([line, fmt(headers), line] + [fmt(r) for r in rows] + [line])
