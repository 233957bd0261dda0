"""Helpers of ``CocoMetric``: building pycocotools ``COCO`` objects and COCO-format results."""
from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Sequence

import numpy as np

_STAT_INDEX = {'mAP': 0, 'mAP_50': 1, 'mAP_75': 2, 'mAP_s': 3, 'mAP_m': 4, 'mAP_l': 5}
_AR_AREA_INDEX = {'AR_s': 9, 'AR_m': 10, 'AR_l': 11}


def coco_stat_index(item: str, proposal_nums: Sequence[int]) -> int:
    """Index into ``COCOeval.stats`` (pycocotools' 12-number summary) of a metric item name.

    ``mAP*`` items map to stats 0-5; ``AR@k`` to 6, 7, 8 for ``k`` = ``proposal_nums[0..2]``; ``AR_s@k``,
    ``AR_m@k``, ``AR_l@k`` to 9, 10, 11 (pycocotools computes them at the last ``maxDets``).

    Raises:
        KeyError: an unknown item, or ``AR@k`` with ``k`` not in ``proposal_nums``.
    """
    if item in _STAT_INDEX:
        return _STAT_INDEX[item]
    head, _, num = item.partition('@')
    if head in _AR_AREA_INDEX and num.isdigit():
        return _AR_AREA_INDEX[head]
    if head == 'AR' and num.isdigit() and int(num) in list(proposal_nums):
        return 6 + list(proposal_nums).index(int(num))
    raise KeyError(f'CocoMetric: unknown metric item {item!r} for proposal_nums={list(proposal_nums)}')


def allowed_items(proposal_nums: Sequence[int]) -> tuple[str, ...]:
    """Metric item names accepted for ``proposal_nums`` (MMDetection's names, ``AR@k`` for each ``k``)."""
    last = proposal_nums[-1]
    ar = [f'AR@{n}' for n in proposal_nums] + [f'AR_{a}@{last}' for a in 'sml']
    legacy = ['AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000']
    names = list(_STAT_INDEX) + ar + [n for n in legacy if n not in ar and not n.startswith('AR@')]
    return tuple(dict.fromkeys(names))


def to_numpy(value: Any, dtype: Any) -> np.ndarray:
    """Tensor / array / list -> numpy array of ``dtype`` on the CPU."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


BACKENDS = ('pycocotools', 'faster_coco_eval')


def resolve_backend(backend: str | None) -> str:
    """The COCO evaluation backend to use: ``'pycocotools'`` or ``'faster_coco_eval'``; ``None`` / ``'auto'``
    picks ``'faster_coco_eval'`` when the package is installed, else ``'pycocotools'`` (nothing is imported).

    Raises:
        ValueError: an unknown name. ImportError: ``'faster_coco_eval'`` asked for but not installed.
    """
    import importlib.util
    if backend in (None, 'auto'):
        return 'faster_coco_eval' if importlib.util.find_spec('faster_coco_eval') is not None else 'pycocotools'
    if backend not in BACKENDS:
        raise ValueError(f"CocoMetric: backend must be one of {list(BACKENDS)} or 'auto', got {backend!r}")
    if backend == 'faster_coco_eval' and importlib.util.find_spec('faster_coco_eval') is None:
        raise ImportError("CocoMetric: backend='faster_coco_eval' needs the faster-coco-eval package "
                          "(pip install faster-coco-eval), or use backend='pycocotools'")
    return backend


def coco_classes(backend: str = 'pycocotools') -> tuple[type, type]:
    """``(COCO, COCOeval)`` classes of a backend: pycocotools' reference implementation, or faster-coco-eval's
    ``COCO`` / ``COCOeval_faster`` (same API and numbers, matching and accumulation in C++;
    https://github.com/MiXaiLL76/faster_coco_eval)."""
    if backend == 'faster_coco_eval':
        from faster_coco_eval import COCO, COCOeval_faster
        return COCO, COCOeval_faster
    if backend != 'pycocotools':
        raise ValueError(f'unknown COCO backend {backend!r}; expected one of {list(BACKENDS)}')
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    return COCO, COCOeval


def _new_coco(dataset: dict, backend: str = 'pycocotools') -> Any:
    coco_cls, _ = coco_classes(backend)
    coco = coco_cls()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def convert_coco(coco: Any, backend: str) -> Any:
    """The same ground truth as a ``COCO`` object of ``backend`` (shares nothing mutable with ``coco``)."""
    coco_cls, _ = coco_classes(backend)
    if isinstance(coco, coco_cls):
        return coco
    return _new_coco(json.loads(json.dumps(coco.dataset)), backend)


def load_coco_api(ann_file: str, backend_args: dict | None = None, sort_categories: bool = False,
                  backend: str = 'pycocotools') -> Any:
    """A ``COCO`` object of ``backend`` for ``ann_file`` (categories sorted by id if ``sort_categories``).

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
    return _new_coco(dataset, backend)


def masks_to_numpy(masks: Any) -> np.ndarray:
    """(N, H, W) bool array from a mask tensor / array or a mask structure with ``to_ndarray()``
    (``BitmapMasks``, ``PolygonMasks``)."""
    if hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    elif hasattr(masks, 'detach'):
        masks = masks.detach().cpu().numpy()
    return np.asarray(masks).astype(bool, copy=False)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """COCO RLE of each binary mask of an (N, H, W) array (``pycocotools.mask.encode`` on a Fortran-ordered
    uint8 copy, one mask at a time); ``counts`` is a ``str`` so the result can be written as json."""
    from pycocotools import mask as mask_util
    rles = []
    for mask in masks:
        rle = mask_util.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0]
        rle['counts'] = rle['counts'].decode('ascii')
        rles.append(rle)
    return rles


def gt_segmentation(mask: Any, height: int, width: int, where: str) -> tuple[Any, float]:
    """Normalise one ground-truth mask to a COCO ``segmentation`` and its area in pixels.

    Args:
        mask: COCO polygons (a list of flat ``[x1, y1, x2, y2, ...]`` lists, pixels in the original image), an
            RLE dict (``size`` (h, w) and ``counts`` as ``str``/``bytes`` (compressed) or a list (uncompressed)),
            or an (H, W) binary array/tensor.
        height, width: the original image size.
        where: names the image and instance in error messages.

    Returns:
        (segmentation, area): polygons with fewer than 3 points are dropped (as MMDetection's loading does);
        RLE ``counts`` become ``str``; arrays are RLE-encoded. ``area`` is pycocotools' mask area.

    Raises:
        ValueError: an unsupported mask type, or an RLE / array whose size is not (height, width).
    """
    from pycocotools import mask as mask_util
    if isinstance(mask, dict):
        if 'counts' not in mask or 'size' not in mask:
            raise ValueError(f'CocoMetric: {where}: an RLE mask needs "size" and "counts", got {sorted(mask)}')
        if [int(v) for v in mask['size']] != [height, width]:
            raise ValueError(f'CocoMetric: {where}: RLE size {list(mask["size"])} is not the image size '
                             f'{[height, width]}')
        counts = mask['counts']
        if isinstance(counts, list):
            rle = mask_util.frPyObjects(dict(mask), height, width)
        else:
            rle = dict(size=[height, width], counts=counts)
        if isinstance(rle['counts'], bytes):
            rle['counts'] = rle['counts'].decode('ascii')
        return rle, float(mask_util.area(rle))
    if isinstance(mask, (list, tuple)):
        polys = [[float(v) for v in p] for p in mask if len(p) >= 6 and len(p) % 2 == 0]
        if not polys:
            return [], 0.0
        rle = mask_util.merge(mask_util.frPyObjects(polys, height, width))
        return polys, float(mask_util.area(rle))
    if hasattr(mask, 'detach') or isinstance(mask, np.ndarray):
        arr = masks_to_numpy(mask)
        if arr.shape != (height, width):
            raise ValueError(f'CocoMetric: {where}: mask of shape {arr.shape} is not the image size '
                             f'{(height, width)}')
        rle = encode_masks(arr[None])[0]
        return rle, float(mask_util.area(rle))
    raise ValueError(f'CocoMetric: {where}: unsupported mask type {type(mask).__name__} (expected COCO polygons, '
                     'an RLE dict or a binary array)')


def build_coco_from_gt(gts: Sequence[dict], classes: Sequence[str],
                       backend: str = 'pycocotools') -> tuple[Any, dict]:
    """A ``COCO`` object of ``backend`` (pycocotools by default) from per-image ground-truth dicts (``img_id``, ``height``, ``width``, ``anns``).

    ``anns``: ``dict(bbox=[x1, y1, x2, y2], bbox_label, ignore_flag[, mask])`` in original-image pixels; category
    ids are the labels; each image gets a new integer id (1, 2, ... in first-seen order; repeated ``img_id`` are
    evaluated once). ``area`` is the mask area when the annotation has a ``mask`` (COCO's definition, what a COCO
    json holds), else the box area ``w * h``. When any annotation has a mask, those without one get an empty
    segmentation (they can only be missed by ``segm`` evaluation).

    Returns:
        (coco, id_map) with ``id_map`` = original ``img_id`` -> integer COCO image id.
    """
    images, annotations, id_map = [], [], {}
    any_mask = any('mask' in ann for gt in gts for ann in gt['anns'])
    for gt in gts:
        if gt['img_id'] in id_map:
            continue
        coco_id = len(id_map) + 1
        id_map[gt['img_id']] = coco_id
        h, w_img = int(gt['height']), int(gt['width'])
        images.append(dict(id=coco_id, width=w_img, height=h, file_name=str(gt['img_id'])))
        for k, ann in enumerate(gt['anns']):
            x1, y1, x2, y2 = ann['bbox']
            w, h_box = x2 - x1, y2 - y1
            entry = dict(id=len(annotations) + 1, image_id=coco_id, category_id=int(ann['bbox_label']),
                         bbox=[x1, y1, w, h_box], area=w * h_box, iscrowd=int(bool(ann['ignore_flag'])))
            if ann.get('mask') is not None:
                seg, area = gt_segmentation(ann['mask'], h, w_img, f'image {gt["img_id"]!r} instance {k}')
                entry.update(segmentation=seg, area=area)
            elif any_mask:
                entry['segmentation'] = []
            annotations.append(entry)
    categories = [dict(id=i, name=name) for i, name in enumerate(classes)]
    return _new_coco(dict(images=images, annotations=annotations, categories=categories), backend), id_map


def _check_labels(pred: dict, cat_ids: Sequence[int]) -> None:
    labels = pred['labels']
    if labels.size and (labels.min() < 0 or labels.max() >= len(cat_ids)):
        raise ValueError(f'CocoMetric: image {pred["img_id"]} has predicted labels outside 0..'
                         f'{len(cat_ids) - 1}: {sorted(set(labels.tolist()))[:10]}')


def det_results_to_coco(preds: Sequence[dict], cat_ids: Sequence[int], id_map: dict) -> list[dict]:
    """COCO result dicts (``image_id``, ``bbox`` xywh, ``score``, ``category_id``) from per-image predictions.

    Raises:
        ValueError: a label outside ``0..len(cat_ids)-1`` (names the image).
    """
    dets = []
    for pred in preds:
        image_id = id_map[pred['img_id']]
        _check_labels(pred, cat_ids)
        xywh = pred['bboxes'].astype(np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        for box, score, label in zip(xywh.tolist(), pred['scores'].tolist(), pred['labels'].tolist()):
            dets.append(dict(image_id=image_id, bbox=box, score=float(score), category_id=cat_ids[label]))
    return dets


def segm_results_to_coco(preds: Sequence[dict], cat_ids: Sequence[int], id_map: dict) -> list[dict]:
    """COCO segmentation results (``image_id``, ``bbox`` xywh, ``score``, ``category_id``, ``segmentation``
    RLE) from per-image predictions that hold ``masks`` (RLE list); the score is ``mask_scores`` when present,
    else ``scores``. Images without ``masks`` contribute nothing.

    Raises:
        ValueError: a label outside ``0..len(cat_ids)-1``, or ``masks`` and ``labels`` of different lengths.
    """
    dets = []
    for pred in preds:
        if pred.get('masks') is None:
            continue
        _check_labels(pred, cat_ids)
        masks, labels = pred['masks'], pred['labels'].tolist()
        scores = pred.get('mask_scores', pred['scores']).tolist()
        if len(masks) != len(labels):
            raise ValueError(f'CocoMetric: image {pred["img_id"]} has {len(masks)} predicted masks but '
                             f'{len(labels)} labels')
        xywh = pred['bboxes'].astype(np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        image_id = id_map[pred['img_id']]
        for box, score, label, rle in zip(xywh.tolist(), scores, labels, masks):
            dets.append(dict(image_id=image_id, bbox=box, score=float(score), category_id=cat_ids[label],
                             segmentation=rle))
    return dets


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    fmt = lambda cells: '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'  # noqa: E731
    return '\n'.join([line, fmt(headers), line] + [fmt(r) for r in rows] + [line])
