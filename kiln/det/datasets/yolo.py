"""``YOLODataset``: the Ultralytics / Roboflow "YOLO" layout (``data.yaml`` + ``images/`` + ``labels/*.txt``).

Layout (https://docs.ultralytics.com/datasets/detect/): a ``data.yaml`` with ``path`` (dataset root; relative
paths are relative to the yaml's folder), ``train`` / ``val`` / ``test`` (each a folder of images, a ``.txt``
file listing image paths, or a list of those; relative to ``path``) and ``names`` (a list, or a dict
``{id: name}``). Roboflow's exports write ``train: ../train/images`` beside a yaml without ``path``: as in
Ultralytics, a relative entry starting with ``../`` that does not exist is looked up without that prefix
(:func:`split_entry_path`). The labels of ``<root>/images/<split>/<stem>.jpg`` are in
``<root>/labels/<split>/<stem>.txt`` (the last ``images`` folder of the path replaced by ``labels``), one object
per line:

* ``class cx cy w h``: a box, centre and size normalised by the image width / height;
* ``class x1 y1 x2 y2 ... xn yn`` (n >= 3): a segment polygon, normalised; its box is the polygon's extent.

An image without a label file, or with an empty one, is a background image (no instances).

Reference: Ultralytics ``ultralytics/data/dataset.py`` / ``utils.py`` (layout and conventions), re-implemented.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable


from kiln.registry import DATASETS

from .base_det_dataset import BaseDetDataset
from .file_io import get_text
from ..visualization.palette import make_palette

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.dng', '.mpo', '.pfm')


def read_data_yaml(path: str, backend_args: dict | None = None) -> dict:
    """Read a YOLO ``data.yaml`` with ``yaml.safe_load`` (no YAML tags are executed).

    Returns:
        ``dict(root=<absolute dataset root>, names=[class names in id order], train=..., val=..., test=...)``
        (split values as in the file: a str, a list of str, or None).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a mapping, no ``names``, or ``names`` ids that are not 0..n-1 (the message names the
            file and the key).
    """
    import yaml  # imported here: reading a data.yaml is the only use (keeps `import kiln.det` light)
    try:
        data = yaml.safe_load(get_text(path, backend_args))
    except yaml.YAMLError as e:
        raise ValueError(f'{path}: not valid YAML ({e})') from None
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping with keys path/train/val/names, got {type(data).__name__}')
    names = data.get('names')
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise ValueError(f'{path}: names must map integer ids to names, got keys {list(names)[:5]}') from None
        if ids != list(range(len(ids))):
            raise ValueError(f'{path}: names ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...')
        names = [str(names[k] if k in names else names[str(k)]) for k in ids]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    else:
        raise ValueError(f"{path}: missing 'names' (a list of class names or a dict {{id: name}})")
    if 'nc' in data and int(data['nc']) != len(names):
        raise ValueError(f"{path}: nc={data['nc']} but 'names' has {len(names)} entries")
    base = osp.dirname(osp.abspath(path))
    root = data.get('path') or '.'
    root = root if osp.isabs(str(root)) else osp.normpath(osp.join(base, str(root)))
    return dict(root=root, names=names, train=data.get('train'), val=data.get('val'), test=data.get('test'))


def split_entry_path(data: dict, entry: str) -> str:
    """The path of one ``train`` / ``val`` / ``test`` entry of a data.yaml read by :func:`read_data_yaml`.

    Absolute entries are kept; relative ones are joined to ``data['root']``. When that does not exist and the
    entry starts with ``../`` (Roboflow's exports: ``train: ../train/images`` for a ``train/`` folder beside
    the yaml), the entry without its ``../`` is used if it exists (Ultralytics' ``check_det_dataset`` rule).
    """
    entry = str(entry)
    if osp.isabs(entry) or '://' in entry:
        return entry
    path = osp.normpath(osp.join(data['root'], entry))
    if not osp.exists(path) and entry.startswith('../'):
        stripped = osp.normpath(osp.join(data['root'], entry[3:]))
        if osp.exists(stripped):
            return stripped
    return path


def label_path_for(img_path: str) -> str:
    """``.../images/x/abc.jpg`` -> ``.../labels/x/abc.txt`` (the last ``images`` folder becomes ``labels``)."""
    parts = img_path.replace('\\', '/').split('/')
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == 'images':
            parts[i] = 'labels'
            break
    return osp.splitext('/'.join(parts))[0] + '.txt'


def parse_label_file(text: str, width: int, height: int, num_classes: int, where: str,
                     on_error: Callable[[str], None] | None = None) -> list[dict]:
    """Instances of one YOLO label file.

    Args:
        text: the file's content.
        width, height: the image size in pixels (to un-normalise).
        num_classes: the number of names; class ids must be in ``[0, num_classes)``.
        where: the label file's path, for messages.
        on_error: called with the message of a bad line, which is then skipped (default: raise ``ValueError``).

    Returns:
        ``[dict(bbox=[x1, y1, x2, y2] xyxy pixels, bbox_label=int, ignore_flag=0, mask=[[x, y, ...]] pixels
        (segments only))]``.

    Raises:
        ValueError: a line that is neither a box (5 numbers) nor a polygon (odd count >= 7), a value that is not a
            number, or a class id out of range (``file:line`` named).
    """
    def bad(message: str) -> None:
        if on_error is None:
            raise ValueError(message)
        on_error(message)

    instances = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad(f'{where}:{line_no}: expected numbers "class cx cy w h" or "class x1 y1 ...", got {line.strip()!r}')
            continue
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            bad(f'{where}:{line_no}: class id {fields[0]} is out of range: data.yaml names {num_classes} classes '
                f'(ids 0..{num_classes - 1})')
            continue
        coords = values[1:]
        if len(coords) == 4:
            cx, cy, w, h = coords
            box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            instances.append(dict(bbox=box, bbox_label=int(cls), ignore_flag=0))
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            xs = [x * width for x in coords[0::2]]
            ys = [y * height for y in coords[1::2]]
            polygon = [v for xy in zip(xs, ys) for v in xy]
            instances.append(dict(bbox=[min(xs), min(ys), max(xs), max(ys)], bbox_label=int(cls), ignore_flag=0,
                                  mask=[polygon]))
        else:
            bad(f'{where}:{line_no}: {len(coords)} coordinates after the class id; expected 4 (cx cy w h) or an '
                'even number >= 6 (a polygon)')
    return instances


@DATASETS.register_module()
class YOLODataset(BaseDetDataset):
    """Detection (and segment) dataset in the Ultralytics YOLO layout (see the module docstring).

    Config::

        dataset = dict(type='YOLODataset', data_root='data/coco128', ann_file='data.yaml', split='train',
                       pipeline=train_pipeline)

    ``ann_file`` is the ``data.yaml`` (joined to ``data_root`` when relative; the yaml's ``path`` then gives
    the dataset root). Classes come from its ``names`` unless ``metainfo=dict(classes=...)`` is given, which
    selects and reorders classes by name (labels of other classes are dropped). Image sizes are read from the
    image headers (Pillow, no decoding). Records follow kiln's detection format (``bbox`` xyxy pixels,
    ``bbox_label``, ``ignore_flag=0``, and ``mask`` as a one-polygon list in pixels for segment labels).

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``: the yaml key listing this split's images.
        **kwargs: see :class:`BaseDetDataset`.

    Raises:
        ValueError: the yaml has no such split, a label file is malformed, or a class in ``metainfo`` is not in
            ``names`` (messages name the file).
        FileNotFoundError: the yaml, an image folder or a listed image is missing.
        OSError: a listed image cannot be read.

    With ``on_bad_sample='warn'`` (see :class:`BaseDetDataset`), bad label lines and missing / unreadable images
    are skipped instead, with one summary warning.
    """

    METAINFO: dict = {}

    def __init__(self, *args: Any, split: str = 'train', **kwargs: Any) -> None:
        self.split = split
        super().__init__(*args, **kwargs)

    def _load_metainfo_from_yaml(self) -> dict:
        data = read_data_yaml(self.ann_file, self.backend_args)
        user_classes = self._metainfo.get('classes')
        if user_classes is None:
            self._metainfo['classes'] = tuple(data['names'])
        else:
            missing = [c for c in user_classes if c not in data['names']]
            if missing:
                raise ValueError(f'{self.ann_file}: classes {missing} of metainfo are not in its names '
                                 f'{data["names"][:20]}')
        self._metainfo.setdefault('palette', make_palette(len(self._metainfo['classes'])))
        return data

    @property
    def metainfo(self) -> dict:
        if 'classes' not in self._metainfo and self.ann_file:
            self._load_metainfo_from_yaml()
        return super().metainfo

    def _image_paths(self, data: dict) -> list[str]:
        entries = data.get(self.split)
        if entries is None:
            raise ValueError(f'{self.ann_file}: no {self.split!r} split (keys train/val/test)')
        paths: list[str] = []
        for entry in entries if isinstance(entries, list) else [entries]:
            entry = split_entry_path(data, entry)
            if osp.isdir(entry):
                paths += sorted(osp.join(entry, f) for f in os.listdir(entry)
                                if f.lower().endswith(IMG_EXTENSIONS))
            elif entry.endswith('.txt') and osp.isfile(entry):
                base = osp.dirname(entry)
                for line in get_text(entry).splitlines():
                    line = line.strip()
                    if line:
                        paths.append(line if osp.isabs(line) else osp.normpath(osp.join(base, line)))
            else:
                raise FileNotFoundError(f'{self.ann_file}: {self.split} entry {entry!r} is neither an image '
                                        'folder nor a .txt list of images')
        return paths

    def load_data_list(self) -> list[dict]:
        """One record per image of the split (sorted by path within a folder)."""
        from PIL import Image

        data = self._load_metainfo_from_yaml()
        names = data['names']
        classes = list(self._metainfo['classes'])
        remap = {names.index(c): i for i, c in enumerate(classes)}
        data_list = []
        for img_path in self._image_paths(data):
            try:
                with Image.open(img_path) as im:
                    width, height = im.size
            except FileNotFoundError:
                self.bad_sample(f'{self.ann_file}: image {img_path!r} of split {self.split!r} does not exist',
                                FileNotFoundError)
                continue
            except OSError as e:  # PIL.UnidentifiedImageError: not an image Pillow can read
                self.bad_sample(f'{self.ann_file}: image {img_path!r} of split {self.split!r} cannot be read '
                                f'({e})', OSError)
                continue
            label_file = label_path_for(img_path)
            text = get_text(label_file) if osp.isfile(label_file) else ''
            instances = []
            on_error = self.bad_sample if self.on_bad_sample == 'warn' else None
            for inst in parse_label_file(text, width, height, len(names), label_file, on_error):
                if inst['bbox_label'] in remap:
                    inst['bbox_label'] = remap[inst['bbox_label']]
                    instances.append(inst)
            stem = osp.splitext(osp.basename(img_path))[0]
            img_id: int | str = int(stem) if stem.isdigit() else stem
            data_list.append(dict(img_path=img_path, img_id=img_id, width=width, height=height,
                                  instances=instances))
        return data_list
