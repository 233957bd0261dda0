"""Data checks: read every annotation and image header once and list every problem, with file and index.

Used by ``kiln check-data`` (before training), by the datasets while they load (the cheap checks: boxes,
class names, COCO image sizes) and by :class:`~kiln.det.engine.hooks.DataCheckHook` (``num_classes`` of the
model against the dataset's classes, dataset warnings copied into the run's log file).

Images are opened with Pillow for their header only (no pixel decoding). A JPEG is reported truncated when no
End-Of-Image marker (``FF D9``) is found in its last bytes: such a file decodes with OpenCV (and with kiln's
loader) but its bottom rows are grey.

Severities: ``'error'`` (training would fail or lose the sample), ``'warning'`` (the sample or box is dropped,
or the data is probably not what was meant), ``'info'`` (tolerated quirks, e.g. a box clipped to the image).
"""
from __future__ import annotations

import difflib
import io
import json
import os.path as osp
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .file_io import get_bytes, get_text

__all__ = ['Problem', 'CheckReport', 'read_image_header', 'is_truncated_jpeg', 'box_problem', 'close_class',
           'check_coco', 'check_voc', 'check_yolo', 'check_records', 'check_dataset', 'check_config',
           'check_num_classes', 'find_num_classes', 'report_dataset_problems', 'dataset_stats']

SEVERITIES = ('error', 'warning', 'info')


@dataclass(frozen=True)
class Problem:
    """One problem found in the data.

    Attributes:
        severity: ``'error'``, ``'warning'`` or ``'info'``.
        file: the file concerned (annotation file, xml, label txt or image).
        index: where in it: the image id / annotation id (COCO), ``object #i`` (VOC), the line (YOLO) or the
            sample index; None for the whole file.
        message: what is wrong and what was expected.
        code: a short kind (``missing_image``, ``truncated_image``, ``bad_box``, ``unknown_class`` ...).
    """
    severity: str
    file: str
    index: Any
    message: str
    code: str = ''

    def __str__(self) -> str:
        where = self.file if self.index is None else f'{self.file} [{self.index}]'
        return f'{self.severity.upper():7s} {where}: {self.message}'


@dataclass
class CheckReport:
    """Problems of one or more datasets, and what was read.

    Attributes:
        problems: every :class:`Problem`, in reading order.
        num_images: images listed by the annotations.
        num_instances: annotated objects read (before any dropping).
        sources: the annotation files / dataset names checked.
    """
    problems: list[Problem] = field(default_factory=list)
    num_images: int = 0
    num_instances: int = 0
    sources: list[str] = field(default_factory=list)

    def add(self, severity: str, file: str, index: Any, message: str, code: str = '') -> None:
        self.problems.append(Problem(severity, str(file), index, message, code))

    def extend(self, other: CheckReport) -> None:
        self.problems += other.problems
        self.num_images += other.num_images
        self.num_instances += other.num_instances
        self.sources += other.sources

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == 'error']

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == 'warning']

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and infos allowed)."""
        return not self.errors

    def counts(self) -> dict[str, dict[str, int]]:
        """``{severity: {code: count}}``."""
        out: dict[str, dict[str, int]] = {}
        for p in self.problems:
            out.setdefault(p.severity, Counter())[p.code or 'other'] += 1
        return {k: dict(v) for k, v in out.items()}

    def summary(self) -> str:
        """One paragraph: what was read and the problem counts per severity and kind."""
        counts = self.counts()
        head = (f'checked {len(self.sources)} annotation source(s), {self.num_images} image(s), '
                f'{self.num_instances} object(s): {len(self.errors)} error(s), {len(self.warnings)} warning(s), '
                f'{sum(p.severity == "info" for p in self.problems)} info')
        parts = [f'  {sev}: ' + ', '.join(f'{code} x{n}' for code, n in sorted(counts[sev].items()))
                 for sev in SEVERITIES if sev in counts]
        return '\n'.join([head, *parts])

    def to_dict(self) -> dict:
        """JSON-ready: the counts, the summary and every problem."""
        return dict(num_images=self.num_images, num_instances=self.num_instances, sources=self.sources,
                    counts=self.counts(), problems=[dict(severity=p.severity, file=p.file, index=p.index,
                                                         message=p.message, code=p.code) for p in self.problems])


# ----------------------------------------------------------------------------------------------- primitives
def is_truncated_jpeg(content: bytes) -> bool:
    """True for JPEG bytes (``FF D8`` start) with no End-Of-Image marker ``FF D9`` in their last 4 KiB.

    Entropy-coded JPEG data never holds ``FF D9`` (an ``FF`` byte there is followed by ``00`` or a restart
    marker), so a file cut short, even by a few bytes, has none near its end; trailing padding after the
    marker (some cameras add it) is tolerated.
    """
    if content[:2] != b'\xff\xd8':
        return False
    return content.rfind(b'\xff\xd9', max(0, len(content) - 4096)) < 0


def read_image_header(path: str, backend_args: dict | None = None) -> tuple[tuple[int, int] | None, Problem | None]:
    """``((width, height), problem)`` of an image file, from its header (Pillow, no pixel decoding).

    ``problem`` is None for a good image; a ``missing_image`` / ``unreadable_image`` error (size None) or a
    ``truncated_image`` warning (size given) otherwise. The whole file is read once (to find the JPEG end
    marker), but never decoded.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        content = get_bytes(path, backend_args)
    except FileNotFoundError:
        return None, Problem('error', path, None, 'image file does not exist', 'missing_image')
    except OSError as e:
        return None, Problem('error', path, None, f'cannot read the image file: {e}', 'unreadable_image')
    try:
        with Image.open(io.BytesIO(content)) as img:
            size = img.size
            fmt = img.format
            if fmt == 'PNG':
                img.verify()  # chunk CRCs; cheap, no decoding
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return None, Problem('error', path, None, f'not a readable image ({len(content)} bytes): {e}',
                             'unreadable_image')
    if fmt == 'JPEG' and is_truncated_jpeg(content):
        return size, Problem('warning', path, None,
                             f'truncated JPEG: no end-of-image marker ({len(content)} bytes); it decodes with a '
                             'warning and its last rows are grey', 'truncated_image')
    return size, None


def box_problem(x1: float, y1: float, x2: float, y2: float, width: float | None,
                height: float | None) -> tuple[str, str] | None:
    """Why the xyxy pixel box cannot be trained on, as ``(code, message)``, or None when it is usable.

    Unusable: ``x2 <= x1`` or ``y2 <= y1`` (``degenerate_box``), or no overlap with the ``width`` x ``height``
    image (``box_outside_image``; skipped when the size is unknown).
    """
    if not (x2 > x1 and y2 > y1):
        return 'degenerate_box', (f'box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has x2 <= x1 or y2 <= y1 '
                                  '(zero or negative width/height)')
    if width and height and (min(x2, width) - max(x1, 0) <= 0 or min(y2, height) - max(y1, 0) <= 0):
        return 'box_outside_image', (f'box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies entirely outside the '
                                     f'{width}x{height} image')
    return None


def close_class(name: str, classes: Sequence[str]) -> str | None:
    """The class of ``classes`` closest to ``name`` (case-insensitive match first, then ``difflib``), or None."""
    lower = {c.lower(): c for c in classes}
    if name.lower() in lower:
        return lower[name.lower()]
    match = difflib.get_close_matches(name, list(classes), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(name: str, classes: Sequence[str]) -> str:
    close = close_class(name, classes)
    return f' (did you mean {close!r}?)' if close else ''


# ----------------------------------------------------------------------------------------------- formats
def check_coco(ann_file: str, img_prefix: str = '', classes: Sequence[str] | None = None,
               check_images: bool = True, backend_args: dict | None = None) -> CheckReport:
    """Check a COCO json and its images.

    Args:
        ann_file: the json.
        img_prefix: folder the ``file_name`` entries are relative to.
        classes: the class names the dataset uses (None: every category of the file).
        check_images: open every image header (existence, readability, truncation, width/height).

    Reports: unreadable json / missing keys, no images, ``classes`` absent from the categories, annotations
    of unknown ``category_id`` (label out of range), missing/invalid ``bbox``, degenerate boxes, boxes outside
    the image, annotations of unknown image ids, ``width``/``height`` differing from the real image, missing,
    unreadable or truncated images.
    """
    rep = CheckReport(sources=[ann_file])
    try:
        data = json.loads(get_text(ann_file, backend_args))
    except FileNotFoundError:
        rep.add('error', ann_file, None, 'annotation file does not exist', 'missing_annotation')
        return rep
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        rep.add('error', ann_file, None, f'not valid json: {e}', 'bad_annotation')
        return rep
    missing = [k for k in ('images', 'annotations', 'categories') if not isinstance(data, dict) or k not in data]
    if missing:
        rep.add('error', ann_file, None, f'not a COCO detection file: no {missing} list', 'bad_annotation')
        return rep
    images, anns, cats = data['images'], data['annotations'], data['categories']
    rep.num_images, rep.num_instances = len(images), len(anns)
    if not images:
        rep.add('error', ann_file, None, 'the file lists no images ("images" is empty)', 'no_images')
    cat_names = {c.get('id'): c.get('name') for c in cats}
    if classes is not None:
        for name in classes:
            if name not in cat_names.values():
                rep.add('error', ann_file, None, f'class {name!r} of `classes` is not a category of the file'
                        f'{_did_you_mean(name, [str(n) for n in cat_names.values()])}', 'unknown_class')
    img_size: dict[Any, tuple[Any, Any]] = {}
    for i, img in enumerate(images):
        img_id = img.get('id', f'#{i}')
        if 'file_name' not in img:
            rep.add('error', ann_file, f'image {img_id}', 'image entry has no "file_name"', 'bad_annotation')
            continue
        w, h = img.get('width'), img.get('height')
        if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            rep.add('error', ann_file, f'image {img_id}', f'invalid width/height {w!r}/{h!r}', 'bad_image_size')
            w = h = None
        img_size[img_id] = (w, h)
        if check_images:
            path = osp.join(img_prefix, img['file_name'])
            size, problem = read_image_header(path, backend_args)
            if problem is not None:
                rep.problems.append(Problem(problem.severity, path, f'image {img_id}', problem.message, problem.code))
            if size is not None and w is not None and tuple(size) != (w, h):
                rep.add('error', ann_file, f'image {img_id}',
                        f'width/height {w}x{h} in the json, but {path} is {size[0]}x{size[1]}', 'size_mismatch')
                img_size[img_id] = size  # boxes are in real pixels
    used = set(cat_names) if classes is None else {k for k, v in cat_names.items() if v in set(classes)}
    for ann in anns:
        where = f'annotation {ann.get("id")} (image {ann.get("image_id")})'
        if ann.get('image_id') not in img_size:
            rep.add('error', ann_file, where, 'image_id is not an id of "images"', 'unknown_image_id')
            continue
        cat = ann.get('category_id')
        if cat not in cat_names:
            rep.add('error', ann_file, where, f'category_id {cat!r} is not a category id of the file '
                    f'(ids {sorted(cat_names)[:10]})', 'label_out_of_range')
            continue
        if cat not in used:
            continue
        try:
            x, y, bw, bh = (float(v) for v in ann['bbox'])
        except (KeyError, TypeError, ValueError):
            rep.add('error', ann_file, where, f'no valid "bbox" [x, y, w, h]: {ann.get("bbox")!r}', 'bad_box')
            continue
        w, h = img_size[ann['image_id']]
        bad = box_problem(x, y, x + bw, y + bh, w, h)
        if bad is None and (bw < 1 or bh < 1):
            bad = ('tiny_box', f'box [{x:g}, {y:g}, {x + bw:g}, {y + bh:g}] is under 1 pixel wide or high')
        if bad is not None and not ann.get('ignore', False):
            rep.add('warning', ann_file, where, bad[1] + '; the dataset drops it', bad[0])
    return rep


def check_voc(ann_file: str, sub_data_root: str, classes: Sequence[str], img_subdir: str = 'JPEGImages',
              ann_subdir: str = 'Annotations', check_images: bool = True,
              backend_args: dict | None = None) -> CheckReport:
    """Check a Pascal-VOC layout: the id list ``ann_file``, one xml per id, and the images.

    Reports: missing list / xml / image, malformed xml, xml without objects, object names not in ``classes``
    (with the closest class), missing or non-numeric boxes, degenerate boxes, boxes outside the image, an xml
    ``<size>`` differing from the real image, unreadable or truncated images.
    """
    rep = CheckReport(sources=[ann_file])
    try:
        ids = [s.strip() for s in get_text(ann_file, backend_args).splitlines() if s.strip()]
    except FileNotFoundError:
        rep.add('error', ann_file, None, 'image id list does not exist', 'missing_annotation')
        return rep
    if not ids:
        rep.add('error', ann_file, None, 'the id list is empty', 'no_images')
    rep.num_images = len(ids)
    for line_no, img_id in enumerate(ids, start=1):
        xml_path = osp.join(sub_data_root, ann_subdir, f'{img_id}.xml')
        img_path = osp.join(sub_data_root, img_subdir, f'{img_id}.jpg')
        size = None
        if check_images:
            size, problem = read_image_header(img_path, backend_args)
            if problem is not None:
                rep.problems.append(Problem(problem.severity, img_path, f'{osp.basename(ann_file)}:{line_no}',
                                            problem.message, problem.code))
        try:
            root = ET.fromstring(get_bytes(xml_path, backend_args))
        except FileNotFoundError:
            rep.add('error', xml_path, None, f'annotation of id {img_id!r} ({osp.basename(ann_file)}:{line_no}) '
                    'does not exist', 'missing_annotation')
            continue
        except ET.ParseError as e:
            rep.add('error', xml_path, None, f'malformed xml: {e}', 'bad_annotation')
            continue
        try:
            w, h = int(float(root.findtext('size/width'))), int(float(root.findtext('size/height')))
        except (TypeError, ValueError):
            w = h = 0
        if size is not None and w > 0 and (w, h) != tuple(size):
            rep.add('warning', xml_path, None, f'<size> says {w}x{h}, the image is {size[0]}x{size[1]}',
                    'size_mismatch')
        if size is not None:
            w, h = size
        objects = root.findall('object')
        if not objects:
            rep.add('warning', xml_path, None, 'no <object>: the image has no annotation', 'empty_annotation')
        rep.num_instances += len(objects)
        for idx, obj in enumerate(objects):
            name = (obj.findtext('name') or '').strip()
            where = f'object #{idx}'
            if name not in classes:
                rep.add('warning', xml_path, where, f'name {name!r} is not in classes {tuple(classes)}'
                        f'{_did_you_mean(name, classes)}; the object is ignored', 'unknown_class')
                continue
            try:
                x1, y1, x2, y2 = (float(obj.findtext(f'bndbox/{k}')) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            except (TypeError, ValueError):
                rep.add('error', xml_path, where, f'({name}) has no numeric <bndbox> xmin/ymin/xmax/ymax', 'bad_box')
                continue
            bad = box_problem(x1 - 1, y1 - 1, x2 - 1, y2 - 1, w or None, h or None)
            if bad is not None:
                severity = 'error' if bad[0] == 'degenerate_box' and (x2 < x1 or y2 < y1) else 'warning'
                rep.add(severity, xml_path, where, f'({name}) {bad[1]}', bad[0])
    return rep


def check_yolo(data_yaml: str, split: str = 'train', classes: Sequence[str] | None = None,
               check_images: bool = True) -> CheckReport:
    """Check one split of a YOLO (Ultralytics) layout: ``data.yaml``, the images and their label files.

    Reports: bad yaml / missing split, missing or unreadable images, malformed label lines, class ids out of
    range, empty label files (info: a background image), degenerate boxes or boxes outside the image
    (normalised coordinates outside 0..1), truncated images.
    """
    from .yolo import IMG_EXTENSIONS, label_path_for, read_data_yaml, split_entry_path
    rep = CheckReport(sources=[f'{data_yaml}:{split}'])
    try:
        data = read_data_yaml(data_yaml)
    except (FileNotFoundError, ValueError) as e:
        rep.add('error', data_yaml, None, str(e), 'bad_annotation')
        return rep
    names = data['names']
    if classes is not None:
        for name in classes:
            if name not in names:
                rep.add('error', data_yaml, None, f'class {name!r} is not in names{_did_you_mean(name, names)}',
                        'unknown_class')
    entries = data.get(split)
    if entries is None:
        rep.add('error', data_yaml, None, f'no {split!r} split', 'missing_split')
        return rep
    paths: list[str] = []
    import os
    for entry in entries if isinstance(entries, list) else [entries]:
        entry = split_entry_path(data, entry)
        if osp.isdir(entry):
            paths += sorted(osp.join(entry, f) for f in os.listdir(entry) if f.lower().endswith(IMG_EXTENSIONS))
        elif str(entry).endswith('.txt') and osp.isfile(entry):
            base = osp.dirname(entry)
            paths += [ln.strip() if osp.isabs(ln.strip()) else osp.normpath(osp.join(base, ln.strip()))
                      for ln in get_text(entry).splitlines() if ln.strip()]
        else:
            rep.add('error', data_yaml, split, f'{entry!r} is neither an image folder nor a .txt list',
                    'missing_split')
    rep.num_images = len(paths)
    if not paths and not rep.errors:
        rep.add('error', data_yaml, split, 'the split has no images', 'no_images')
    for img_path in paths:
        size = None
        if check_images:
            size, problem = read_image_header(img_path)
            if problem is not None:
                rep.problems.append(problem)
        label_file = label_path_for(img_path)
        if not osp.isfile(label_file):
            rep.add('info', label_file, None, 'no label file: a background image', 'empty_annotation')
            continue
        text = get_text(label_file)
        if not text.strip():
            rep.add('info', label_file, None, 'empty label file: a background image', 'empty_annotation')
        for line_no, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            rep.num_instances += 1
            try:
                values = [float(v) for v in fields]
            except ValueError:
                rep.add('error', label_file, f'line {line_no}', f'not numbers: {line.strip()!r}', 'bad_annotation')
                continue
            cls = values[0]
            if cls != int(cls) or not 0 <= cls < len(names):
                rep.add('error', label_file, f'line {line_no}', f'class id {fields[0]} out of range 0..'
                        f'{len(names) - 1}', 'label_out_of_range')
                continue
            coords = values[1:]
            if len(coords) == 4:
                cx, cy, bw, bh = coords
                x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
            elif len(coords) >= 6 and len(coords) % 2 == 0:
                x1, x2, y1, y2 = min(coords[0::2]), max(coords[0::2]), min(coords[1::2]), max(coords[1::2])
            else:
                rep.add('error', label_file, f'line {line_no}', f'{len(coords)} coordinates: expected 4 or an even '
                        'number >= 6', 'bad_annotation')
                continue
            bad = box_problem(x1, y1, x2, y2, 1.0, 1.0)
            if bad is not None:
                rep.add('warning', label_file, f'line {line_no}', bad[1].replace('1x1 image', 'normalised 0..1 '
                                                                                 'image'), bad[0])
    return rep


def check_records(records: Iterable[dict], classes: Sequence[str], source: str = 'dataset',
                  check_images: bool = True) -> CheckReport:
    """Check kiln detection records (``img_path``, ``width``, ``height``, ``instances``) of any dataset:
    image files, labels in ``range(len(classes))``, degenerate boxes or boxes outside the image."""
    rep = CheckReport(sources=[source])
    for i, rec in enumerate(records):
        rep.num_images += 1
        path = rec.get('img_path', '')
        if check_images:
            size, problem = read_image_header(path)
            if problem is not None:
                rep.problems.append(Problem(problem.severity, path, f'sample {i}', problem.message, problem.code))
        for j, inst in enumerate(rec.get('instances', [])):
            rep.num_instances += 1
            label = inst.get('bbox_label')
            if not isinstance(label, int) or not 0 <= label < len(classes):
                rep.add('error', path, f'sample {i} instance {j}', f'label {label!r} out of range 0..{len(classes) - 1}',
                        'label_out_of_range')
            bad = box_problem(*inst['bbox'], rec.get('width'), rec.get('height'))
            if bad is not None:
                rep.add('warning', path, f'sample {i} instance {j}', bad[1], bad[0])
    return rep


# ----------------------------------------------------------------------------------------------- configs
def _leaf_dataset_cfgs(cfg: Any) -> list[Any]:
    """The leaf dataset configs (or objects) inside wrappers (``dataset=`` / ``datasets=``)."""
    if isinstance(cfg, dict):
        if cfg.get('datasets') is not None:
            return [leaf for sub in cfg['datasets'] for leaf in _leaf_dataset_cfgs(sub)]
        if isinstance(cfg.get('dataset'), (dict,)) or (cfg.get('dataset') is not None
                                                        and not isinstance(cfg.get('dataset'), str)):
            return _leaf_dataset_cfgs(cfg['dataset'])
        return [cfg]
    for attr in ('datasets', 'dataset'):
        sub = getattr(cfg, attr, None)
        if sub is not None:
            subs = sub if isinstance(sub, (list, tuple)) else [sub]
            return [leaf for s in subs for leaf in _leaf_dataset_cfgs(s)]
    return [cfg]


def _build_lazy(cfg: dict) -> Any:
    """Build a leaf dataset without loading its annotations (``lazy_init=True``, no pipeline)."""
    import kiln.det.datasets  # noqa: F401  (registers the dataset types)
    from kiln.registry import DATASETS
    cfg = dict(cfg)
    cfg['pipeline'] = []
    cfg['lazy_init'] = True
    return DATASETS.build(cfg)


def check_dataset(dataset: Any, check_images: bool = True) -> CheckReport:
    """Check a dataset given as a config dict or an object (wrappers are walked): the raw annotations are read
    again (COCO json, VOC xml, YOLO labels), so that what the dataset would silently drop is listed too.
    Other dataset types are checked through their loaded records (:func:`check_records`)."""
    from .coco import CocoDataset
    from .xml_style import XMLDataset
    from .yolo import YOLODataset
    rep = CheckReport()
    for leaf in _leaf_dataset_cfgs(dataset):
        try:
            ds = _build_lazy(leaf) if isinstance(leaf, dict) else leaf
        except Exception as e:  # noqa: BLE001  (reported, not raised: check-data lists every problem)
            rep.add('error', str(leaf.get('ann_file', leaf.get('type'))), None, f'cannot build the dataset: '
                    f'{type(e).__name__}: {e}', 'bad_config')
            continue
        try:
            rep.extend(_check_built(ds, check_images, CocoDataset, XMLDataset, YOLODataset))
        except Exception as e:  # noqa: BLE001
            rep.add('error', str(getattr(ds, 'ann_file', type(ds).__name__)), None,
                    f'{type(e).__name__}: {e}', 'bad_annotation')
    return rep


def _check_built(ds: Any, check_images: bool, coco: type, xml: type, yolo: type) -> CheckReport:
    meta_classes = ds._metainfo.get('classes') if hasattr(ds, '_metainfo') else None
    backend_args = getattr(ds, 'backend_args', None)
    if isinstance(ds, coco):
        prefix = ds.data_prefix.get('img', ds.data_prefix.get('img_path', ds.data_root or ''))
        return check_coco(ds.ann_file, prefix, meta_classes, check_images, backend_args)
    if isinstance(ds, xml):
        return check_voc(ds.ann_file, ds.sub_data_root, meta_classes or (), ds.img_subdir, ds.ann_subdir,
                         check_images, backend_args)
    if isinstance(ds, yolo):
        return check_yolo(ds.ann_file, ds.split, meta_classes, check_images)
    if hasattr(ds, 'full_init'):
        ds.full_init()
    classes = ds.metainfo.get('classes') or ()
    return check_records((ds.get_data_info(i) for i in range(len(ds))), classes,
                         source=getattr(ds, 'name', None) or type(ds).__name__, check_images=check_images)


def find_num_classes(model: Any, path: str = 'model') -> list[tuple[str, int]]:
    """``[(key path, num_classes)]`` of the heads of a model config (dicts) or of a built ``nn.Module``.

    RPN heads are skipped (their ``num_classes`` is 1: object or not, whatever the dataset).
    """
    found: list[tuple[str, int]] = []
    if isinstance(model, dict):
        for key, value in model.items():
            if key in ('rpn_head', 'train_cfg', 'test_cfg', 'data_preprocessor', 'init_cfg'):
                continue
            if key == 'num_classes' and isinstance(value, int):
                found.append((f'{path}.{key}', value))
            elif isinstance(value, (dict, list, tuple)):
                found += find_num_classes(value, f'{path}.{key}')
    elif isinstance(model, (list, tuple)):
        for i, value in enumerate(model):
            found += find_num_classes(value, f'{path}[{i}]')
    elif hasattr(model, 'named_modules'):
        for name, module in model.named_modules():
            n = getattr(module, 'num_classes', None)
            if isinstance(n, int) and 'rpn' not in name.lower() and 'RPN' not in type(module).__name__:
                found.append((f'{path}.{name}.num_classes' if name else f'{path}.num_classes', n))
    return found


def check_num_classes(model: Any, classes: Sequence[str], source: str = 'model') -> list[Problem]:
    """Errors for each head whose ``num_classes`` differs from ``len(classes)`` (see :func:`find_num_classes`)."""
    return [Problem('error', source, key, f'{key}={n} but the dataset has {len(classes)} classes '
                    f'{tuple(classes)[:10]}{"..." if len(classes) > 10 else ""}: set {key.split(".", 1)[-1]}='
                    f'{len(classes)}', 'num_classes_mismatch')
            for key, n in find_num_classes(model) if n != len(classes)]


def check_config(cfg: Any, check_images: bool = True, stages: Sequence[str] = ('train', 'val', 'test')) -> CheckReport:
    """Check every dataset of a config's ``{train,val,test}_dataloader`` (each file once) and the model's
    ``num_classes`` against the classes of the first dataset."""
    rep = CheckReport()
    seen: set[str] = set()
    classes = None
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        for leaf in _leaf_dataset_cfgs(loader['dataset']):
            key = json.dumps(leaf, sort_keys=True, default=str) if isinstance(leaf, dict) else str(id(leaf))
            if key in seen:
                continue
            seen.add(key)
            if classes is None and isinstance(leaf, dict):
                try:
                    classes = _build_lazy(leaf).metainfo.get('classes')
                except Exception:  # noqa: BLE001  (check_dataset reports it)
                    pass
            rep.extend(check_dataset(leaf, check_images))
    if classes is not None and cfg.get('model') is not None:
        rep.problems += check_num_classes(cfg['model'], classes, source='config')
    return rep


# ----------------------------------------------------------------------------------------------- reporting
def report_dataset_problems(dataset: Any, lines: Sequence[str]) -> None:
    """What a dataset does with the problems it met while loading: one ``UserWarning`` per line (on stderr at
    once, or logged by the Runner building the dataset: ``kiln.runner.runner._build_warnings_logged``), and the
    lines kept in ``dataset.data_warnings``, which ``DataCheckHook`` writes into the run's log file when the
    Runner did not log them (a dataset built outside the Runner)."""
    store = getattr(dataset, 'data_warnings', None)
    if store is None:
        store = []
        try:
            dataset.data_warnings = store
        except AttributeError:
            pass
    for line in lines:
        store.append(line)
        warnings.warn(line, stacklevel=3)


def dataset_stats(records: Iterable[dict], classes: Sequence[str]) -> dict:
    """Per-class image and instance counts and box size / aspect-ratio lists of kiln detection records.

    Returns:
        ``dict(num_images, num_instances, num_empty_images, classes=[dict(name, images, instances)],
        box_sqrt_area=[...], box_aspect=[...] (h / w), box_width=[...], box_height=[...], image_sizes=
        {'WxH': count})`` (box values in pixels, ignored instances included).
    """
    images = Counter()
    instances = Counter()
    sqrt_area, aspect, widths, heights = [], [], [], []
    sizes = Counter()
    n_img = n_inst = n_empty = 0
    for rec in records:
        n_img += 1
        sizes[f'{rec.get("width")}x{rec.get("height")}'] += 1
        insts = rec.get('instances', [])
        if not insts:
            n_empty += 1
        seen = set()
        for inst in insts:
            label = int(inst['bbox_label'])
            instances[label] += 1
            seen.add(label)
            x1, y1, x2, y2 = inst['bbox']
            w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            widths.append(w)
            heights.append(h)
            sqrt_area.append((w * h) ** 0.5)
            aspect.append(h / w if w > 0 else float('inf'))
            n_inst += 1
        for label in seen:
            images[label] += 1
    return dict(num_images=n_img, num_instances=n_inst, num_empty_images=n_empty,
                classes=[dict(name=str(c), images=images[i], instances=instances[i]) for i, c in enumerate(classes)],
                box_sqrt_area=sqrt_area, box_aspect=aspect, box_width=widths, box_height=heights,
                image_sizes=dict(sizes))
