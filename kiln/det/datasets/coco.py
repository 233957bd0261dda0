"""``CocoDataset``: COCO-format detection annotations (json) read with pycocotools.

Reference: MMDetection 3.x ``mmdet.datasets.CocoDataset`` (behaviour), re-implemented; the annotation format is
described at https://cocodataset.org/#format-data.
"""
from __future__ import annotations

import contextlib
import io
import json
import os.path as osp

from kiln.registry import DATASETS

from .base_det_dataset import BaseDetDataset
from .file_io import get_text
from ..visualization.palette import make_palette

COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
    'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
    'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')


@DATASETS.register_module()
class CocoDataset(BaseDetDataset):
    """COCO detection dataset.

    ``ann_file`` is a COCO json (joined to ``data_root`` when relative); images are found at
    ``data_prefix['img'] / file_name`` (``data_prefix=dict(img='val2017/')`` as in MMDetection configs).

    Classes: ``metainfo['classes']`` (default the 80 COCO names) selects and orders the categories: the json
    category named ``classes[i]`` gets label ``i``; annotations of other categories are dropped. Records::

        dict(img_path, img_id (the json image id), height, width, instances=[dict(
             bbox=[x1, y1, x2, y2] (xyxy pixels, converted from COCO's xywh), bbox_label, ignore_flag,
             mask)])

    ``mask`` is the annotation's ``segmentation`` as stored in the json (polygon list, uncompressed RLE with
    list ``counts`` or compressed RLE), present when the annotation has a non-empty one; ``LoadAnnotations(
    with_mask=True)`` decodes it.

    ``iscrowd=1`` annotations get ``ignore_flag=1``; annotations with ``ignore=1``, width/height < 1 pixel,
    ``area <= 0`` or lying entirely outside the image are dropped (as MMDetection does).

    Raises:
        FileNotFoundError: ``ann_file`` does not exist.
        ValueError: the json is not COCO-format, lists no images, a name in ``classes`` is not one of its
            categories, or (``test_mode=False``) every annotation of the selected classes has an unusable box
            (the message names the file and the annotations). With ``on_bad_sample='error'`` (default, see
            :class:`BaseDetDataset`) also: an image entry without ``file_name`` / numeric ``width`` /
            ``height``, an annotation without a valid ``bbox`` or whose ``category_id`` is not in
            ``categories``; ``on_bad_sample='warn'`` skips those with one summary warning.

    Warnings (``UserWarning``; the Runner building the dataset logs them into the run's log file): dropped boxes, with their
    count, annotation / image ids and the images left without a box; ``width``/``height`` differing from the
    image file (checked for files of up to 1000 images; ``kiln check-data`` checks any size).
    """

    METAINFO = {'classes': COCO_CLASSES, 'palette': make_palette(len(COCO_CLASSES))}

    def load_data_list(self) -> list[dict]:
        """Parse ``self.ann_file`` into kiln detection records (one per json image, in json order)."""
        from pycocotools.coco import COCO  # heavy, imported on use

        text = get_text(self.ann_file, self.backend_args)
        try:
            dataset = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f'{self.ann_file}: not valid json ({e})') from None
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(dataset, dict) or key not in dataset:
                raise ValueError(f'{self.ann_file}: not a COCO detection file, missing the {key!r} list')
        coco = COCO()
        coco.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()

        classes = self._metainfo.get('classes')
        if classes is None:
            raise ValueError(f'{type(self).__name__}: metainfo has no "classes"')
        name_to_id: dict[str, int] = {}
        for cat in dataset['categories']:
            name_to_id.setdefault(cat['name'], cat['id'])
        missing = [c for c in classes if c not in name_to_id]
        if missing:
            raise ValueError(f'{self.ann_file}: classes {missing} are not categories of this file '
                             f'(it has {sorted(name_to_id)[:20]}{"..." if len(name_to_id) > 20 else ""})')
        self.cat_ids = [name_to_id[c] for c in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}

        img_prefix = self.data_prefix.get('img', self.data_prefix.get('img_path', self.data_root or ''))
        if not dataset['images']:
            raise ValueError(f'{self.ann_file}: the file lists no images ("images" is empty)')
        self._bad_boxes: list[str] = []
        self._known_cat_ids = {cat.get('id') for cat in dataset['categories']}
        data_list = []
        for img_id in coco.getImgIds():
            img_info = coco.imgs[img_id]
            anns = [coco.anns[i] for i in coco.getAnnIds(imgIds=[img_id])]
            record = self.parse_data_info(img_info, anns, img_prefix)
            if record is not None:  # None: a bad image skipped (on_bad_sample='warn')
                data_list.append(record)
        _report_load_problems(self, data_list)
        return data_list

    def parse_data_info(self, img_info: dict, anns: list[dict], img_prefix: str = '') -> dict | None:
        """Turn one json image entry and its annotations into a record (see the class docstring); None when the
        image entry is bad and ``on_bad_sample='warn'`` skips it."""
        try:
            width, height = int(img_info['width']), int(img_info['height'])
            file_name = img_info['file_name']
        except (KeyError, TypeError, ValueError) as e:
            what = repr(e.args[0]) if isinstance(e, KeyError) else f'valid width/height ({e})'
            self.bad_sample(f'{self.ann_file}: image {img_info.get("id")} has no {what}')
            return None
        known = getattr(self, '_known_cat_ids', None)
        instances = []
        for ann in anns:
            if known is not None and ann.get('category_id') not in known:
                self.bad_sample(f'{self.ann_file}: annotation {ann.get("id")} of image {img_info["id"]} has '
                                f'category_id {ann.get("category_id")!r}, which is not in "categories" '
                                f'(ids {sorted(known)[:20]})')
                continue
            if ann.get('ignore', False) or ann.get('category_id') not in self.cat2label:
                continue
            try:
                x1, y1, w, h = (float(v) for v in ann['bbox'])
            except (KeyError, TypeError, ValueError):
                self.bad_sample(f'{self.ann_file}: annotation {ann.get("id")} of image {img_info["id"]} has '
                                f'no valid "bbox" [x, y, w, h], got {ann.get("bbox")!r}')
                continue
            inter_w = max(0.0, min(x1 + w, width) - max(x1, 0.0))
            inter_h = max(0.0, min(y1 + h, height) - max(y1, 0.0))
            if inter_w * inter_h == 0 or w < 1 or h < 1 or ann.get('area', w * h) <= 0:
                why = ('x2 <= x1 or y2 <= y1' if w <= 0 or h <= 0 else 'under 1 pixel' if w < 1 or h < 1
                       else 'area <= 0' if ann.get('area', w * h) <= 0 else 'outside the image')
                getattr(self, '_bad_boxes', []).append(f'annotation {ann.get("id")} of image {img_info["id"]} '
                                                       f'({why}: bbox {ann["bbox"]} in {width}x{height})')
                continue
            instance = dict(bbox=[x1, y1, x1 + w, y1 + h], bbox_label=self.cat2label[ann['category_id']],
                            ignore_flag=1 if ann.get('iscrowd', 0) else 0)
            if ann.get('segmentation'):
                instance['mask'] = ann['segmentation']
            instances.append(instance)
        return dict(img_path=osp.join(img_prefix, file_name), img_id=img_info['id'],
                    height=height, width=width, instances=instances)


def _report_load_problems(dataset: CocoDataset, data_list: list[dict], size_check_limit: int = 1000) -> None:
    """Warn (``UserWarning``, which the Runner logs into the run's log) about dropped boxes, with counts and
    ids, and about ``width``/``height`` that differ from the image files (headers read for files of at most
    ``size_check_limit`` images; ``kiln check-data`` reads them all). Raise when training would see no box."""
    from PIL import Image

    from .checks import report_dataset_problems
    lines = []
    bad = dataset._bad_boxes
    if bad:
        emptied = [str(r['img_id']) for r in data_list if not r['instances']]
        shown = '; '.join(bad[:10]) + ('; ...' if len(bad) > 10 else '')
        lines.append(f'{dataset.ann_file}: dropped {len(bad)} annotation(s) with an unusable box (x2 <= x1, '
                     f'zero area or outside the image); {len(emptied)} of {len(data_list)} image(s) have no box '
                     f'left{" (ids " + ", ".join(emptied[:10]) + (", ..." if len(emptied) > 10 else "") + ")" if emptied else ""}'
                     f': {shown}')
        if not dataset.test_mode and not any(r['instances'] for r in data_list):
            raise ValueError(f'{dataset.ann_file}: every one of the {len(bad)} annotation(s) of the selected '
                             f'classes has an unusable box, nothing is left to train on: {shown}')
    if len(data_list) <= size_check_limit and not any('://' in r['img_path'] for r in data_list[:1]):
        wrong = []
        for r in data_list:
            try:
                with Image.open(r['img_path']) as img:  # header only
                    size = img.size
            except (OSError, ValueError):  # missing / unreadable files are reported when loaded
                continue
            if tuple(size) != (r['width'], r['height']):
                wrong.append(f'image {r["img_id"]} ({r["img_path"]}): json {r["width"]}x{r["height"]}, file '
                             f'{size[0]}x{size[1]}')
        if wrong:
            lines.append(f'{dataset.ann_file}: width/height of {len(wrong)} image(s) do not match the image file '
                         '(boxes are checked and clipped against the json size; fix the json): '
                         + '; '.join(wrong[:10]) + ('; ...' if len(wrong) > 10 else ''))
    report_dataset_problems(dataset, lines)
