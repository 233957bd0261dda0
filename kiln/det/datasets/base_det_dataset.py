"""``BaseDetDataset``: the common base of kiln's detection datasets.

Reference: MMDetection 3.x ``mmdet.datasets.BaseDetDataset`` (behaviour), re-implemented.
"""
from __future__ import annotations

from typing import Any

from kiln.dataset import BaseDataset
from kiln.registry import DATASETS


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
        **kwargs: forwarded to :class:`kiln.dataset.BaseDataset`.
    """

    def __init__(self, *args: Any, backend_args: dict | None = None, **kwargs: Any) -> None:
        self.backend_args = backend_args
        super().__init__(*args, **kwargs)

    def filter_data(self) -> list[dict]:
        """Apply ``filter_cfg`` (see the class docstring) to ``self.data_list`` and return the kept records."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = bool(self.filter_cfg.get('filter_empty_gt', False))
        min_size = self.filter_cfg.get('min_size', 0) or 0
        kept = []
        for info in self.data_list:
            if filter_empty_gt and len(info.get('instances', [])) == 0:
                continue
            if min(info['width'], info['height']) < min_size:
                continue
            kept.append(info)
        return kept

    def get_cat_ids(self, idx: int) -> list[int]:
        """The class labels (``bbox_label``, one per instance, ignored ones included) of image ``idx``."""
        return [int(inst['bbox_label']) for inst in self.get_data_info(idx)['instances']]
