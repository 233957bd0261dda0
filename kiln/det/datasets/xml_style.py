"""``XMLDataset``: Pascal-VOC-style datasets (one xml per image, an image-id list file).

Reference: MMDetection 3.x ``mmdet.datasets.XMLDataset`` (behaviour), re-implemented; the xml layout is the
PASCAL VOC devkit's (http://host.robots.ox.ac.uk/pascal/VOC/).
"""
from __future__ import annotations

import os.path as osp
import xml.etree.ElementTree as ET
from typing import Any

from kiln.registry import DATASETS

from .base_det_dataset import BaseDetDataset
from .file_io import get_bytes, get_text


def _read_image_size(path: str, backend_args: dict | None) -> tuple[int, int]:
    """(width, height) of an image file, read from its header with Pillow."""
    import io

    from PIL import Image
    with Image.open(io.BytesIO(get_bytes(path, backend_args))) as img:
        return img.size


@DATASETS.register_module()
class XMLDataset(BaseDetDataset):
    """Detection dataset in Pascal VOC layout.

    Layout (paths relative to ``data_root``; MMDetection's config keys)::

        <sub_data_root>/<ann_file>                   image ids, one per line (e.g. ImageSets/Main/test.txt)
        <sub_data_root>/<ann_subdir>/<img_id>.xml    annotations
        <sub_data_root>/<img_subdir>/<img_id>.jpg    images

    with ``sub_data_root = data_prefix['sub_data_root']`` (``data_root`` when absent). ``metainfo['classes']`` is
    required; objects of other classes are skipped, with one warning counting them per name, naming files and
    object indices and the closest class (``'rbc'`` -> ``'RBC'``); when that leaves a training set without
    any object, loading fails (``ValueError``). Warnings go to ``UserWarning`` and, through the Runner that
    builds the dataset, to the run's log file. Records::

        dict(img_path, img_id (the file stem, str), xml_path, height, width (from the xml <size>, else from the
             image header), instances=[dict(bbox=[x1, y1, x2, y2], bbox_label, ignore_flag)])

    Boxes: VOC coordinates are 1-based, so 1 is subtracted (as MMDetection does) giving xyxy pixels; boxes are
    clipped to the image (one ``UserWarning`` lists those extending more than 1 pixel outside it);
    ``<difficult>1`` gives ``ignore_flag=1``. Boxes that have zero area after clipping (degenerate ``x1 == x2``
    boxes or boxes entirely outside the image) are dropped with one ``UserWarning`` listing them.

    Args:
        img_subdir: image folder under ``sub_data_root``.
        ann_subdir: xml folder under ``sub_data_root``.
        **kwargs: see :class:`BaseDetDataset`.

    Raises:
        FileNotFoundError: the id list or an xml file is missing.
        ValueError: malformed xml, an object without ``<name>`` / ``<bndbox>`` / numeric coordinates, or a box
            with ``xmax < xmin`` / ``ymax < ymin``; the message names the xml file and the object index. With
            ``on_bad_sample='warn'`` (see :class:`BaseDetDataset`) these objects / images (and a missing xml)
            are skipped instead, with one summary warning.
    """

    def __init__(self, img_subdir: str = 'JPEGImages', ann_subdir: str = 'Annotations', **kwargs: Any) -> None:
        self.img_subdir = img_subdir
        self.ann_subdir = ann_subdir
        self._dropped: list[str] = []
        self._clipped: list[str] = []
        super().__init__(**kwargs)

    @property
    def sub_data_root(self) -> str:
        """The dataset folder holding ``img_subdir`` and ``ann_subdir`` (``data_prefix['sub_data_root']``, else
        ``data_root``)."""
        return self.data_prefix.get('sub_data_root', self.data_root or '')

    def load_data_list(self) -> list[dict]:
        """Read the id list ``self.ann_file`` and parse one xml per id (in list order)."""
        classes = self._metainfo.get('classes')
        if not classes:
            raise ValueError(f'{type(self).__name__}: metainfo["classes"] is required')
        self.cat2label = {name: i for i, name in enumerate(classes)}
        self._dropped, self._clipped = [], []
        self._unknown: list[tuple[str, int, str]] = []
        img_ids = [line.strip() for line in get_text(self.ann_file, self.backend_args).splitlines()]
        data_list = []
        for img_id in img_ids:
            if not img_id:
                continue
            record = self.parse_data_info(dict(
                img_id=img_id,
                file_name=osp.join(self.img_subdir, f'{img_id}.jpg'),
                xml_path=osp.join(self.sub_data_root, self.ann_subdir, f'{img_id}.xml')))
            if record is not None:  # None: a bad image skipped (on_bad_sample='warn')
                data_list.append(record)
        lines = []
        if self._clipped:
            shown = '; '.join(self._clipped[:5]) + ('; ...' if len(self._clipped) > 5 else '')
            lines.append(f'{type(self).__name__}: clipped {len(self._clipped)} box(es) extending more than 1 '
                         f'pixel outside their image: {shown}')
        if self._dropped:
            shown = '; '.join(self._dropped[:5]) + ('; ...' if len(self._dropped) > 5 else '')
            lines.append(f'{type(self).__name__}: dropped {len(self._dropped)} box(es) with zero area after '
                         f'clipping to the image: {shown}')
        if self._unknown:
            lines.append(self._unknown_names_message(classes))
            if not self.test_mode and not any(r['instances'] for r in data_list):
                raise ValueError(f'{self.ann_file}: no object is left to train on: {lines[-1]}')
        from .checks import report_dataset_problems
        report_dataset_problems(self, lines)
        return data_list

    def _unknown_names_message(self, classes: Any) -> str:
        from collections import Counter

        from .checks import close_class
        counts = Counter(name for _, _, name in self._unknown)
        per_name = ', '.join(f'{name!r} x{n}' + (f' (did you mean {close_class(name, classes)!r}?)'
                                                 if close_class(name, classes) else '')
                             for name, n in counts.most_common(10))
        where = '; '.join(f'{f} object #{i} ({n})' for f, i, n in self._unknown[:5])
        return (f'{type(self).__name__} {self.ann_file}: ignored {len(self._unknown)} object(s) whose <name> is not '
                f'in classes {tuple(classes)}: {per_name}; e.g. {where}{"; ..." if len(self._unknown) > 5 else ""}')

    def parse_data_info(self, img_info: dict) -> dict | None:
        """Parse one image's xml (``img_info``: ``img_id``, ``file_name``, ``xml_path``) into a record (None:
        the image is bad and ``on_bad_sample='warn'`` skips it)."""
        xml_path = img_info['xml_path']
        try:
            root = ET.fromstring(get_bytes(xml_path, self.backend_args))
        except ET.ParseError as e:
            self.bad_sample(f'{xml_path}: malformed xml ({e})')
            return None
        except FileNotFoundError:
            self.bad_sample(f'{self.ann_file}: image id {img_info["img_id"]!r} has no annotation file {xml_path}',
                            FileNotFoundError)
            return None
        img_path = osp.join(self.sub_data_root, img_info['file_name'])
        width = height = 0
        size = root.find('size')
        if size is not None:
            try:
                width, height = int(float(size.findtext('width'))), int(float(size.findtext('height')))
            except (TypeError, ValueError):
                width = height = 0
        if width <= 0 or height <= 0:  # no <size>: read the image header
            try:
                width, height = _read_image_size(img_path, self.backend_args)
            except FileNotFoundError:
                self.bad_sample(f'{xml_path}: no <size> and the image {img_path} does not exist', FileNotFoundError)
                return None
            except OSError as e:  # PIL.UnidentifiedImageError and other unreadable files
                self.bad_sample(f'{xml_path}: no <size> and the image {img_path} cannot be read ({e})', OSError)
                return None
        return dict(img_path=img_path, img_id=img_info['img_id'], xml_path=xml_path, height=height, width=width,
                    instances=self._parse_instance_info(root, xml_path, width, height))

    def _parse_instance_info(self, root: ET.Element, xml_path: str, width: int, height: int,
                             minus_one: bool = True) -> list[dict]:
        instances = []
        for idx, obj in enumerate(root.findall('object')):
            name = (obj.findtext('name') or '').strip()
            if not name:
                self.bad_sample(f'{xml_path}: object #{idx} has no <name>')
                continue
            if name not in self.cat2label:
                getattr(self, '_unknown', []).append((osp.basename(xml_path), idx, name))
                continue
            difficult = obj.findtext('difficult')
            try:
                difficult_flag = int(float(difficult)) if difficult not in (None, '') else 0
            except ValueError:
                self.bad_sample(f'{xml_path}: object #{idx} ({name}) has a non-numeric <difficult> {difficult!r}')
                continue
            box = obj.find('bndbox')
            if box is None:
                self.bad_sample(f'{xml_path}: object #{idx} ({name}) has no <bndbox>')
                continue
            try:
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            except (TypeError, ValueError):
                raw = [box.findtext(k) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
                self.bad_sample(f'{xml_path}: object #{idx} ({name}) needs numeric xmin, ymin, xmax, ymax in '
                                f'<bndbox>, got {raw}')
                continue
            if x2 < x1 or y2 < y1:
                self.bad_sample(f'{xml_path}: object #{idx} ({name}) has xmax < xmin or ymax < ymin: '
                                f'[{x1:g}, {y1:g}, {x2:g}, {y2:g}]')
                continue
            if minus_one:
                x1, y1, x2, y2 = x1 - 1, y1 - 1, x2 - 1, y2 - 1
            if x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:
                self._clipped.append(f'{osp.basename(xml_path)} object #{idx} ({name}) '
                                     f'[{x1:g}, {y1:g}, {x2:g}, {y2:g}] in a {width}x{height} image')
            cx1, cx2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            cy1, cy2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
            if cx2 <= cx1 or cy2 <= cy1:
                self._dropped.append(f'{osp.basename(xml_path)} object #{idx} ({name}) '
                                     f'[{x1:g}, {y1:g}, {x2:g}, {y2:g}] in a {width}x{height} image')
                continue
            instances.append(dict(bbox=[cx1, cy1, cx2, cy2], bbox_label=self.cat2label[name],
                                  ignore_flag=1 if difficult_flag else 0))
        return instances
