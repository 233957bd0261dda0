"""Named datasets, as Detectron2 users register them: ``DatasetCatalog``, ``MetadataCatalog``,
``register_coco_instances`` and ``CatalogDataset`` to use a registered name from a config.

``DatasetCatalog.register(name, func)`` stores a function that returns the dataset's records; nothing is read
until the dataset is used (``DatasetCatalog.get(name)`` calls it). The records may be kiln's detection records
(``img_path``, ``instances=[dict(bbox xyxy, bbox_label, ...)]``) or Detectron2's dicts (``file_name``,
``image_id``, ``height``, ``width``, ``annotations=[dict(bbox, bbox_mode, category_id, segmentation,
iscrowd)]`` with ``bbox_mode`` 0 = XYXY_ABS or 1 = XYWH_ABS and contiguous ``category_id``); the latter are
converted. ``MetadataCatalog.get(name)`` holds the class names (``thing_classes``) and colours
(``thing_colors``) that become the dataset's ``metainfo['classes']`` / ``['palette']``.

The two catalogs are explicit module-level registries, like ``kiln.registry.DATASETS``: a name registered in a
process is visible to every Runner of that process (register in the config's ``custom_imports`` module, or
before building the Runner).

Reference: Detectron2 ``detectron2/data/catalog.py``, ``data/datasets/coco.py`` (behaviour), re-implemented.
"""
from __future__ import annotations

from typing import Any, Callable

from kiln.registry import DATASETS

from .base_det_dataset import BaseDetDataset

__all__ = ['CatalogDataset', 'DatasetCatalog', 'Metadata', 'MetadataCatalog', 'register_coco_instances']

XYXY_ABS, XYWH_ABS = 0, 1


class _DatasetCatalog:
    """Name -> function returning the list of records. ``DatasetCatalog`` is the one instance."""

    def __init__(self) -> None:
        self._funcs: dict[str, Callable[[], list]] = {}

    def register(self, name: str, func: Callable[[], list]) -> None:
        """Register ``func`` (no arguments, returns a list of record dicts) under ``name``.

        Raises:
            TypeError: ``func`` is not callable.
            KeyError: ``name`` is already registered (``remove`` it first).
        """
        if not callable(func):
            raise TypeError(f'DatasetCatalog.register({name!r}): func must be callable, got {type(func).__name__}')
        if name in self._funcs:
            raise KeyError(f'DatasetCatalog: {name!r} is already registered')
        self._funcs[name] = func

    def get(self, name: str) -> list[dict]:
        """Call the function registered under ``name`` and return its records.

        Raises:
            KeyError: unknown ``name`` (the message lists the registered names).
            TypeError: the function did not return a list.
        """
        if name not in self._funcs:
            raise KeyError(f'DatasetCatalog: {name!r} is not registered; registered: {sorted(self._funcs)}')
        records = self._funcs[name]()
        if not isinstance(records, list):
            raise TypeError(f'DatasetCatalog: the function of {name!r} returned a {type(records).__name__}, '
                            'expected a list of dicts')
        return records

    def list(self) -> list[str]:
        return sorted(self._funcs)

    def remove(self, name: str) -> None:
        self._funcs.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._funcs


class Metadata:
    """Attributes of one named dataset (``thing_classes``, ``thing_colors``, ``json_file``, ``image_root``...).

    ``set(**kwargs)`` sets them (setting an existing one to a different value is an error, as in Detectron2);
    reading a missing one raises ``AttributeError`` naming the dataset and the attributes it has.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, 'name', name)

    def set(self, **kwargs: Any) -> 'Metadata':
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.__dict__ and self.__dict__[key] != value:
            raise AttributeError(f'Metadata of {self.name!r}: {key!r} is already {self.__dict__[key]!r}; '
                                 f'cannot set it to {value!r}')
        object.__setattr__(self, key, value)

    def __getattr__(self, key: str) -> Any:
        raise AttributeError(f'Metadata of {self.__dict__.get("name")!r} has no {key!r} '
                             f'(it has {sorted(k for k in self.__dict__ if k != "name")})')

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class _MetadataCatalog:
    """Name -> :class:`Metadata` (created on first ``get``). ``MetadataCatalog`` is the one instance."""

    def __init__(self) -> None:
        self._meta: dict[str, Metadata] = {}

    def get(self, name: str) -> Metadata:
        if name not in self._meta:
            self._meta[name] = Metadata(name)
        return self._meta[name]

    def list(self) -> list[str]:
        return sorted(self._meta)

    def remove(self, name: str) -> None:
        self._meta.pop(name, None)


DatasetCatalog = _DatasetCatalog()
MetadataCatalog = _MetadataCatalog()


def register_coco_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register a COCO-format instances json under ``name`` (Detectron2's function of the same name).

    The classes are the json's category names in category-id order (``thing_classes``), unless ``metadata``
    gives ``thing_classes``; the records are read by :class:`CocoDataset` when the dataset is first used.

    Args:
        name: the dataset name, e.g. ``'balloon_train'``.
        metadata: extra metadata (e.g. ``thing_colors``); may be empty.
        json_file: path of the COCO json.
        image_root: folder the json's ``file_name`` s are relative to.
    """
    def load() -> list[dict]:
        from .coco import CocoDataset
        classes = MetadataCatalog.get(name).get('thing_classes')
        if classes is None:
            classes = _json_classes(json_file)
            MetadataCatalog.get(name).set(thing_classes=list(classes))
        ds = CocoDataset(ann_file=json_file, data_prefix=dict(img=image_root),
                         metainfo=dict(classes=tuple(classes)), test_mode=True)
        return list(ds.full_data_list)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type='coco', **metadata)


def _json_classes(json_file: str) -> list[str]:
    import json

    from .file_io import get_text
    cats = json.loads(get_text(json_file)).get('categories', [])
    return [c['name'] for c in sorted(cats, key=lambda c: c['id'])]


def _to_kiln_record(rec: dict, name: str, index: int) -> dict:
    """A Detectron2 dataset dict -> a kiln detection record (kiln records pass through)."""
    if 'img_path' in rec:
        return rec
    if 'file_name' not in rec:
        raise KeyError(f"DatasetCatalog {name!r}: record {index} has neither 'img_path' (kiln) nor 'file_name' "
                       f'(Detectron2); keys: {sorted(rec)}')
    instances = []
    for j, ann in enumerate(rec.get('annotations', [])):
        x1, y1, a, b = (float(v) for v in ann['bbox'])
        mode = int(ann.get('bbox_mode', XYXY_ABS))
        if mode == XYWH_ABS:
            a, b = x1 + a, y1 + b
        elif mode != XYXY_ABS:
            raise ValueError(f'DatasetCatalog {name!r}: record {index} annotation {j}: bbox_mode {mode} is not '
                             'supported (0 = XYXY_ABS, 1 = XYWH_ABS)')
        inst = dict(bbox=[x1, y1, a, b], bbox_label=int(ann['category_id']),
                    ignore_flag=1 if ann.get('iscrowd', 0) else 0)
        if ann.get('segmentation'):
            inst['mask'] = ann['segmentation']
        instances.append(inst)
    return dict(img_path=rec['file_name'], img_id=rec.get('image_id', index), height=int(rec['height']),
                width=int(rec['width']), instances=instances)


@DATASETS.register_module()
class CatalogDataset(BaseDetDataset):
    """A dataset registered in :data:`DatasetCatalog`, usable from a config by name::

        train_dataloader = dict(dataset=dict(type='CatalogDataset', name='balloon_train',
                                             pipeline=train_pipeline))

    ``metainfo['classes']`` comes from ``MetadataCatalog.get(name).thing_classes`` (and ``palette`` from
    ``thing_colors``) unless given. ``filter_cfg``, ``indices``, ``pipeline`` work as for any
    :class:`BaseDetDataset`.

    Raises:
        KeyError: ``name`` is not registered (the registered names are listed).
        ValueError: no classes known for ``name``.
    """

    METAINFO: dict = {}

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        if name not in DatasetCatalog:
            raise KeyError(f'CatalogDataset: {name!r} is not registered in DatasetCatalog; registered: '
                           f'{DatasetCatalog.list()}')
        self.name = name
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        records = [_to_kiln_record(r, self.name, i) for i, r in enumerate(DatasetCatalog.get(self.name))]
        meta = MetadataCatalog.get(self.name)
        if 'classes' not in self._metainfo:
            classes = meta.get('thing_classes')
            if classes is None:
                raise ValueError(f"CatalogDataset {self.name!r}: no classes: set MetadataCatalog.get("
                                 f"{self.name!r}).thing_classes or pass metainfo=dict(classes=...)")
            self._metainfo['classes'] = tuple(classes)
        if 'palette' not in self._metainfo and meta.get('thing_colors') is not None:
            self._metainfo['palette'] = [tuple(c) for c in meta.get('thing_colors')]
        return records

    @property
    def metainfo(self) -> dict:
        if 'classes' not in self._metainfo:
            classes = MetadataCatalog.get(self.name).get('thing_classes')
            if classes is None and self.name in DatasetCatalog:
                self.full_init()  # a COCO registration learns its classes on first read
            elif classes is not None:
                self._metainfo['classes'] = tuple(classes)
        return super().metainfo
