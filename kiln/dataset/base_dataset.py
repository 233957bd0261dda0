"""``BaseDataset``: lazy, index-able dataset of annotation records passed through a pipeline.

Reference: MMEngine ``mmengine.dataset.BaseDataset`` (behaviour), re-implemented. One deliberate difference:
``indices`` select from the full, *unfiltered* list returned by ``load_data_list`` and are applied *before*
``filter_data`` (MMEngine applies them after filtering, so indices computed on the raw annotation file, e.g. for
active learning, point at the wrong records once images without annotations are filtered out).
"""
from __future__ import annotations

import copy
import json
import os.path as osp
import pickle
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from .compose import Compose


def _is_abs(path: str) -> bool:
    return osp.isabs(path) or '://' in path


class BaseDataset(Dataset):
    """Base class of map-style datasets built from an annotation file.

    Initialisation (``full_init``, run at construction unless ``lazy_init=True``, and at most once):
    ``load_data_list()`` -> select ``indices`` (from the unfiltered list) -> ``filter_data()`` -> optional
    serialisation of the records into one numpy byte buffer (saves memory with many dataloader workers).

    ``full_data_list`` keeps the unfiltered records; ``subset(indices)`` builds a dataset from positions in it
    (stable numbering for active learning), ``full_indices`` maps current records back to it. The dataloader
    kiln builds seeds the pipeline's randomness from (sampler seed, epoch, index) before each sample is fetched
    (``kiln.dataset.SeededDataLoader``), for this class and any other dataset alike.

    Args:
        ann_file: annotation file; joined with ``data_root`` unless absolute.
        metainfo: meta information (e.g. ``classes``); overrides ``METAINFO`` of the class, which overrides the
            ``metainfo`` stored in the annotation file.
        data_root: root prefixed to ``ann_file`` and every ``data_prefix`` value that is relative.
        data_prefix: folders of the data files, e.g. ``dict(img_path='JPEGImages')``.
        filter_cfg: options for ``filter_data`` (interpreted by subclasses, e.g. ``filter_empty_gt``).
        indices: ``int`` n keeps the first n records (a negative n keeps the last ``|n|``); a sequence keeps
            those records in that order. Applied to the *unfiltered* ``load_data_list`` output.
        serialize_data: store records pickled in one numpy buffer.
        pipeline: transforms (callables or cfg dicts built from ``TRANSFORMS``).
        test_mode: if True, ``__getitem__`` never refetches and a ``None`` from the pipeline is an error.
        lazy_init: skip ``full_init`` at construction (only metainfo is loaded).
        max_refetch: in train mode, how many other random indices to try when the pipeline returns ``None``.

    Raises:
        TypeError: ``metainfo`` / ``data_prefix`` are not dicts, ``indices`` has the wrong type.
        IndexError: an entry of ``indices`` or an index passed to ``get_data_info`` is out of range.
        RuntimeError: ``__getitem__`` got ``None`` from the pipeline ``max_refetch + 1`` times (train mode) or
            once (test mode).
    """

    METAINFO: dict = dict()
    _fully_initialized: bool = False
    _full_data_list: list = []
    _full_indices: list = []

    def __init__(self,
                 ann_file: str = '',
                 metainfo: dict | None = None,
                 data_root: str = '',
                 data_prefix: dict | None = None,
                 filter_cfg: dict | None = None,
                 indices: int | Sequence[int] | None = None,
                 serialize_data: bool = False,
                 pipeline: Sequence[dict | Callable] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000) -> None:
        if data_prefix is None:
            data_prefix = dict(img_path='')
        if metainfo is not None and not isinstance(metainfo, dict):
            raise TypeError(f'{type(self).__name__}: metainfo must be a dict, got {type(metainfo).__name__}')
        if not isinstance(data_prefix, dict):
            raise TypeError(f'{type(self).__name__}: data_prefix must be a dict, got {type(data_prefix).__name__}')
        if indices is not None and not isinstance(indices, (int, Sequence)):
            raise TypeError(f'{type(self).__name__}: indices must be an int or a sequence of ints, '
                            f'got {type(indices).__name__}')
        self.ann_file = ann_file
        self.data_root = data_root
        self.data_prefix = copy.copy(data_prefix)
        self.filter_cfg = copy.deepcopy(filter_cfg)
        self._indices = indices
        self.serialize_data = serialize_data
        self.test_mode = test_mode
        self.max_refetch = max_refetch
        self.data_list: list[dict] = []
        self.data_bytes: np.ndarray | None = None
        self.data_address: np.ndarray | None = None
        self._metainfo = self._load_metainfo(copy.deepcopy(metainfo))
        self._join_prefix()
        self.pipeline = Compose(pipeline)
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------ metainfo and paths
    @classmethod
    def _load_metainfo(cls, metainfo: dict | None = None) -> dict:
        """``METAINFO`` of the class updated with the user's ``metainfo`` (user wins)."""
        meta = copy.deepcopy(cls.METAINFO)
        if metainfo:
            meta.update(metainfo)
        return meta

    @property
    def metainfo(self) -> dict:
        """A deep copy of the dataset's meta information (e.g. ``classes``, ``palette``)."""
        return copy.deepcopy(self._metainfo)

    def _join_prefix(self) -> None:
        if self.ann_file and self.data_root and not _is_abs(self.ann_file):
            self.ann_file = osp.join(self.data_root, self.ann_file)
        for key, prefix in self.data_prefix.items():
            if not isinstance(prefix, str):
                raise TypeError(f'{type(self).__name__}: data_prefix[{key!r}] must be a str, '
                                f'got {type(prefix).__name__}')
            if self.data_root and not _is_abs(prefix):
                self.data_prefix[key] = osp.join(self.data_root, prefix)

    # ------------------------------------------------------------------ initialisation
    def full_init(self) -> None:
        """Load, select ``indices`` (from the unfiltered list), filter and optionally serialise. Idempotent."""
        if self._fully_initialized:
            return
        data_list = self.load_data_list()
        if not isinstance(data_list, list):
            raise TypeError(f'{type(self).__name__}.load_data_list must return a list of dicts, '
                            f'got {type(data_list).__name__}')
        self._full_data_list = data_list
        self._restrict(self._indices)

    def _restrict(self, indices: int | Sequence[int] | None) -> None:
        """Set the current records to ``full_data_list[indices]`` (all when None), filtered, maybe serialised."""
        full = self._full_data_list
        positions = list(range(len(full)))
        if indices is not None:
            positions = self._select(positions, indices)
            positions = [p % len(full) for p in positions]
        self.data_list = [full[p] for p in positions]
        by_id = {id(r): p for r, p in zip(self.data_list, positions)}
        self.data_list = self.filter_data()
        self._full_indices = [by_id.get(id(r), -1) for r in self.data_list]
        self.data_bytes = self.data_address = None
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize(self.data_list)
            self.data_list = []
        self._fully_initialized = True

    def load_data_list(self) -> list[dict]:
        """Read ``ann_file`` and return one dict per sample.

        The default reads the OpenMMLab 2.0 JSON format ``{"metainfo": {...}, "data_list": [{...}, ...]}``
        and passes every raw record through ``parse_data_info``; keys of the file's ``metainfo`` not set by the
        class or the user are added. Subclasses for other formats override this method.

        Raises:
            ValueError: no ``ann_file`` given, or the file is not in the expected format.
        """
        if not self.ann_file:
            raise ValueError(f'{type(self).__name__}: ann_file is empty; pass ann_file or override '
                             'load_data_list()')
        if '://' in self.ann_file:
            import fsspec
            with fsspec.open(self.ann_file, 'r') as f:
                annotations = json.load(f)
        else:
            with open(self.ann_file, encoding='utf-8') as f:
                annotations = json.load(f)
        if not isinstance(annotations, dict) or 'data_list' not in annotations:
            raise ValueError(f'{self.ann_file}: expected a JSON object with keys "metainfo" and "data_list"')
        for k, v in annotations.get('metainfo', {}).items():
            self._metainfo.setdefault(k, v)
        data_list: list[dict] = []
        for i, raw in enumerate(annotations['data_list']):
            info = self.parse_data_info(raw)
            if isinstance(info, dict):
                data_list.append(info)
            elif isinstance(info, list) and all(isinstance(x, dict) for x in info):
                data_list.extend(info)
            else:
                raise TypeError(f'{self.ann_file}: parse_data_info of data_list[{i}] must return a dict or a '
                                f'list of dicts, got {type(info).__name__}')
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict | list[dict]:
        """Turn one raw record into one (or several) sample dicts; default: join ``data_prefix`` to paths.

        For every ``data_prefix`` key (e.g. ``img_path``) present in the record with a relative path, the
        prefix is joined in front of it.
        """
        info = dict(raw_data_info)
        for key, prefix in self.data_prefix.items():
            if key in info and isinstance(info[key], str) and prefix and not _is_abs(info[key]):
                info[key] = osp.join(prefix, info[key])
        return info

    def filter_data(self) -> list[dict]:
        """Return the records to keep from ``self.data_list`` (default: all; subclasses use ``filter_cfg``)."""
        return self.data_list

    @staticmethod
    def _select(data_list: list, indices: int | Sequence[int]) -> list:
        n = len(data_list)
        if isinstance(indices, int):
            return data_list[:indices] if indices >= 0 else data_list[indices:]
        out = []
        for pos, i in enumerate(indices):
            if not -n <= int(i) < n:
                raise IndexError(f'indices[{pos}] = {i} is out of range for {n} records')
            out.append(data_list[int(i)])
        return out

    @staticmethod
    def _serialize(data_list: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        chunks = [np.frombuffer(pickle.dumps(d, protocol=4), dtype=np.uint8) for d in data_list]
        address = np.cumsum(np.asarray([len(c) for c in chunks], dtype=np.int64))
        data_bytes = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)
        return data_bytes, address

    # ------------------------------------------------------------------ subsets
    def get_subset_(self, indices: int | Sequence[int]) -> None:
        """Keep only ``indices`` of the current (filtered) records, in place."""
        self.full_init()
        self._full_indices = self._select(self._full_indices, indices)
        if self.serialize_data:
            records = [self._raw(i) for i in range(len(self))]
            self.data_bytes, self.data_address = self._serialize(self._select(records, indices))
        else:
            self.data_list = self._select(self.data_list, indices)

    def get_subset(self, indices: int | Sequence[int]) -> 'BaseDataset':
        """A copy of this dataset holding only ``indices`` of the current (filtered) records."""
        self.full_init()
        sub = copy.copy(self)
        sub.data_list = list(self.data_list)
        sub._full_indices = list(self._full_indices)
        sub._metainfo = copy.deepcopy(self._metainfo)
        sub.get_subset_(indices)
        return sub

    @property
    def full_data_list(self) -> list[dict]:
        """The records exactly as ``load_data_list()`` returned them: before ``indices`` and ``filter_data``.

        This is the list that :meth:`subset` indices (and the ``indices`` argument) refer to. The list is a
        new list, the records are shared: do not modify them.
        """
        self.full_init()
        return list(self._full_data_list)

    @property
    def full_indices(self) -> list[int]:
        """For each current record ``i`` (``dataset[i]``), its position in :attr:`full_data_list` (-1 when
        ``filter_data`` returned a new record object that cannot be traced back)."""
        self.full_init()
        return list(self._full_indices)

    def subset(self, indices: Sequence[int]) -> 'BaseDataset':
        """A new dataset restricted to ``indices`` of :attr:`full_data_list` (the full, unfiltered
        ``load_data_list()`` order), whatever this dataset's own ``indices`` / filtering kept.

        The selected records then go through ``filter_data`` as at construction (so e.g. ``filter_empty_gt``
        still drops images without boxes in training mode); ``subset.full_indices`` tells which were kept.
        The annotation file is not read again; ``metainfo``, pipeline and options are shared with ``self``.
        (``get_subset`` is MMEngine's variant whose indices refer to the current, filtered records.)

        Args:
            indices: positions in ``full_data_list``, in the order wanted (negative values count from the end).

        Raises:
            TypeError: ``indices`` is not a sequence of ints.
            IndexError: an index is out of range of ``full_data_list`` (the message gives its position).
        """
        if isinstance(indices, (int, str, bytes)) or not isinstance(indices, Sequence) and not hasattr(
                indices, 'tolist'):
            raise TypeError(f'{type(self).__name__}.subset: indices must be a sequence of ints, '
                            f'got {type(indices).__name__}')
        indices = [int(i) for i in (indices.tolist() if hasattr(indices, 'tolist') else indices)]
        self.full_init()
        sub = copy.copy(self)
        sub._metainfo = copy.deepcopy(self._metainfo)
        sub._indices = indices
        sub._restrict(indices)
        return sub

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        self.full_init()
        if self.serialize_data:
            return len(self.data_address)
        return len(self.data_list)

    def get_data_info(self, idx: int) -> dict:
        """A deep copy of record ``idx`` with ``sample_idx`` set (non-negative index)."""
        self.full_init()
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f'{type(self).__name__}: index {idx} out of range for {n} samples')
        idx = idx % n
        info = self._raw(idx)
        info['sample_idx'] = idx
        return info

    def _raw(self, idx: int) -> dict:
        """A private copy of record ``idx`` (0 <= idx < len)."""
        if self.serialize_data:
            start = 0 if idx == 0 else int(self.data_address[idx - 1])
            return pickle.loads(self.data_bytes[start:int(self.data_address[idx])].tobytes())
        return copy.deepcopy(self.data_list[idx])

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on record ``idx``; ``None`` means "skip this sample"."""
        return self.pipeline(self.get_data_info(idx))

    def __getitem__(self, idx: int) -> Any:
        """The pipeline output of record ``idx`` (random transforms draw from the global generators, which
        kiln's dataloader seeds per sample, see ``kiln.dataset.SeededDataLoader``)."""
        self.full_init()
        return self._getitem(int(idx))

    def _getitem(self, idx: int) -> Any:
        if self.test_mode:
            data = self.prepare_data(idx)
            if data is None:
                raise RuntimeError(f'{type(self).__name__}: the pipeline returned None for index {idx} in '
                                   'test mode (test pipelines must not drop samples)')
            return data
        tried = idx
        for _ in range(self.max_refetch + 1):
            data = self.prepare_data(tried)
            if data is not None:
                return data
            tried = int(np.random.randint(0, len(self)))
        raise RuntimeError(f'{type(self).__name__}: the pipeline returned None for index {idx} and '
                           f'{self.max_refetch} randomly chosen other indices; check the pipeline and data')

    def __repr__(self) -> str:
        n = len(self) if self._fully_initialized else 'not loaded (lazy_init)'
        return (f'{type(self).__name__}(ann_file={self.ann_file!r}, data_root={self.data_root!r}, '
                f'num_samples={n}, test_mode={self.test_mode})')
