"""``BaseDetDataset``: the common base of kiln's detection datasets.

Reference: MMDetection 3.x ``mmdet.datasets.BaseDetDataset`` (behaviour), re-implemented.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Any

import numpy as np

from kiln.dataset import BadSampleWarning, BaseDataset
from kiln.registry import DATASETS

ON_BAD_SAMPLE = ('error', 'warn')


@DATASETS.register_module()
class BaseDetDataset(BaseDataset):
    """Base class of detection datasets; subclasses implement ``load_data_list()``.

    Every record of ``data_list`` follows kiln's detection record format::

        dict(img_path=str, img_id=int | str, height=int, width=int,
             instances=[dict(bbox=[x1, y1, x2, y2] (float pixels, xyxy), bbox_label=int, ignore_flag=0 | 1)])

    Filtering (``filter_cfg``, MMDetection semantics), applied only when ``test_mode=False`` so that evaluation
    always sees every image:

    * ``filter_empty_gt`` (bool, default False): drop images without any instance;
    * ``min_size`` (int, default 0): drop images whose shorter side (``min(width, height)``) is below it.

    Args:
        *args: forwarded to :class:`kiln.dataset.BaseDataset` (``ann_file``, ``metainfo``, ``data_root``,
            ``data_prefix``, ``filter_cfg``, ``indices``, ``serialize_data``, ``pipeline``, ``test_mode``,
            ``lazy_init``, ``max_refetch``).
        backend_args: fsspec storage options used to open annotation files on remote file systems.
        on_bad_sample: what a bad sample does, ``'error'`` (default) or ``'warn'``:

            * while indexing (``load_data_list``), for problems that are errors by default (a box with
              ``x2 < x1`` in a VOC xml, a YOLO class id out of range or a malformed label line, a COCO
              annotation without a valid ``bbox``, a missing / unreadable annotation or image file): ``'error'``
              raises naming the file, the index and what was expected; ``'warn'`` skips the object (or the
              image) and the dataset issues one summary warning with the counts and the first few places
              (``data_warnings``; the Runner logs it into the run's log). With ``'warn'``, image files
              are also checked to exist at indexing (local paths), and records of missing ones are dropped.
              Problems that are warnings in MMDetection too (degenerate COCO / VOC boxes dropped, VOC names
              not in ``classes`` ignored) are warnings in both modes;
            * while loading a sample (``dataset[i]``), when the pipeline raises ``OSError`` (missing, unreadable
              or corrupt image): ``'error'`` re-raises with a note naming the index and the file; ``'warn'``
              issues a :class:`kiln.dataset.BadSampleWarning` naming both and loads another sample in its place,
              drawn with ``numpy.random`` (which kiln's dataloader seeds from (seed, epoch, index), so the
              replacement, and exact resume, are deterministic). ``SeededDataLoader`` logs each such warning and
              a per-epoch count. In ``test_mode`` a sample is never replaced (evaluation must see every image).
        **kwargs: forwarded to :class:`kiln.dataset.BaseDataset`.

    Raises:
        ValueError: ``on_bad_sample`` is neither ``'error'`` nor ``'warn'``.
        RuntimeError: (``'warn'``) ``max_refetch + 1`` samples in a row could not be loaded.
    """

    def __init__(self, *args: Any, backend_args: dict | None = None, on_bad_sample: str = 'error',
                 **kwargs: Any) -> None:
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"{type(self).__name__}: on_bad_sample must be 'error' or 'warn', "
                             f'got {on_bad_sample!r}')
        self.backend_args = backend_args
        self.on_bad_sample = on_bad_sample
        self._skipped_at_index: list[str] = []
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ bad samples
    def bad_sample(self, message: str, exc_type: type[Exception] = ValueError) -> None:
        """Handle one bad object / image found while indexing: raise ``exc_type(message)`` with
        ``on_bad_sample='error'``; with ``'warn'`` remember it for the summary (the caller then skips it)."""
        if self.on_bad_sample == 'error':
            raise exc_type(message + "; set on_bad_sample='warn' in the dataset config to skip such samples "
                                     'with a warning')
        self._skipped_at_index.append(message)

    def _drop_missing_images(self, data_list: list[dict]) -> list[dict]:
        """(``'warn'``) Records whose local image file exists; the others are reported as skipped."""
        kept = []
        for i, rec in enumerate(data_list):
            path = rec.get('img_path', '')
            if path and '://' not in path and not osp.isfile(path):
                self._skipped_at_index.append(f'image #{i} (id {rec.get("img_id")}): file {path} does not exist')
                continue
            kept.append(rec)
        return kept

    def full_init(self) -> None:
        """:meth:`BaseDataset.full_init`, then (``on_bad_sample='warn'``) one summary warning of what indexing
        skipped."""
        if self._fully_initialized:
            return
        self._skipped_at_index = []
        super().full_init()
        if self._skipped_at_index:
            from .checks import report_dataset_problems
            shown = '; '.join(self._skipped_at_index[:10]) + ('; ...' if len(self._skipped_at_index) > 10 else '')
            report_dataset_problems(self, [f"{type(self).__name__} {self.ann_file}: on_bad_sample='warn' skipped "
                                           f'{len(self._skipped_at_index)} bad object(s)/image(s) while indexing: '
                                           f'{shown}'])

    def _getitem(self, idx: int) -> Any:
        """``BaseDataset._getitem`` with the load-time part of ``on_bad_sample`` (see the class docstring)."""
        tried = idx
        for _ in range(self.max_refetch + 1):
            try:
                return super()._getitem(tried)
            except OSError as e:
                path = self.get_data_info(tried).get('img_path', '?')
                if self.on_bad_sample == 'error' or self.test_mode:
                    hint = '' if self.test_mode else "; on_bad_sample='warn' skips such samples with a warning"
                    e.add_note(f'{type(self).__name__}: while loading sample {tried} ({path}){hint}')
                    raise
                replacement = int(np.random.randint(0, len(self)))
                warnings.warn(BadSampleWarning(
                    f"{type(self).__name__}: skipped sample {tried} ({path}), it cannot be loaded ({e}); "
                    f"loading sample {replacement} in its place (on_bad_sample='warn')"), stacklevel=2)
                tried = replacement
        raise RuntimeError(f'{type(self).__name__}: {self.max_refetch + 1} samples in a row, starting at index '
                           f'{idx}, could not be loaded; check the images (`kiln check-data`)')

    def filter_data(self) -> list[dict]:
        """Apply ``filter_cfg`` (see the class docstring) to ``self.data_list`` and return the kept records
        (with ``on_bad_sample='warn'``, records whose image file is missing are dropped first, in every mode)."""
        data_list = self.data_list
        if self.on_bad_sample == 'warn':
            data_list = self._drop_missing_images(data_list)
        if self.test_mode or not self.filter_cfg:
            return data_list
        filter_empty_gt = bool(self.filter_cfg.get('filter_empty_gt', False))
        min_size = self.filter_cfg.get('min_size', 0) or 0
        kept = []
        for info in data_list:
            if filter_empty_gt and len(info.get('instances', [])) == 0:
                continue
            if min(info['width'], info['height']) < min_size:
                continue
            kept.append(info)
        return kept

    def get_cat_ids(self, idx: int) -> list[int]:
        """The class labels (``bbox_label``, one per instance, ignored ones included) of image ``idx``."""
        return [int(inst['bbox_label']) for inst in self.get_data_info(idx)['instances']]
