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
        ValueError: the json is not COCO-format, or a name in ``classes`` is not one of its categories (the
            message names the file).
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
        data_list = []
        for img_id in coco.getImgIds():
            img_info = coco.imgs[img_id]
            anns = [coco.anns[i] for i in coco.getAnnIds(imgIds=[img_id])]
            data_list.append(self.parse_data_info(img_info, anns, img_prefix))
        return data_list

    def parse_data_info(self, img_info: dict, anns: list[dict], img_prefix: str = '') -> dict:
        """Turn one json image entry and its annotations into a record (see the class docstring)."""
        try:
            width, height = int(img_info['width']), int(img_info['height'])
            file_name = img_info['file_name']
        except KeyError as e:
            raise ValueError(f'{self.ann_file}: image {img_info.get("id")} has no {e.args[0]!r}') from None
        instances = []
        for ann in anns:
            if ann.get('ignore', False) or ann.get('category_id') not in self.cat2label:
                continue
            try:
                x1, y1, w, h = (float(v) for v in ann['bbox'])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} of image {img_info["id"]} has '
                                 f'no valid "bbox" [x, y, w, h], got {ann.get("bbox")!r}') from None
            inter_w = max(0.0, min(x1 + w, width) - max(x1, 0.0))
            inter_h = max(0.0, min(y1 + h, height) - max(y1, 0.0))
            if inter_w * inter_h == 0 or w < 1 or h < 1 or ann.get('area', w * h) <= 0:
                continue
            instance = dict(bbox=[x1, y1, x1 + w, y1 + h], bbox_label=self.cat2label[ann['category_id']],
                            ignore_flag=1 if ann.get('iscrowd', 0) else 0)
            if ann.get('segmentation'):
                instance['mask'] = ann['segmentation']
            instances.append(instance)
        return dict(img_path=osp.join(img_prefix, file_name), img_id=img_info['id'],
                    height=height, width=width, instances=instances)
