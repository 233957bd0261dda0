"""Base class of RoI heads (the second stage of two-stage detectors); MMDetection 3.x ``BaseRoIHead``."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping, Sequence

from torch import Tensor

from kiln.model import BaseModule
from kiln.registry import MODELS
from kiln.structures import InstanceData


class BaseRoIHead(BaseModule):
    """RoI head base: builds the box branch (``bbox_roi_extractor`` + ``bbox_head``), the optional mask branch
    (``mask_roi_extractor`` + ``mask_head``) and optional ``shared_head``, and the train-time assigner/sampler.

    Args:
        bbox_roi_extractor, bbox_head: configs of the box branch.
        mask_roi_extractor, mask_head: configs of the mask branch (``mask_roi_extractor=None`` shares the box
            extractor).
        shared_head: config of a head applied to pooled features before both branches.
        train_cfg: ``model.train_cfg.rcnn`` (``assigner``, ``sampler``, ``pos_weight``, mask ``mask_size``...).
        test_cfg: ``model.test_cfg.rcnn`` (``score_thr``, ``nms``, ``max_per_img``, ``mask_thr_binary``).
        init_cfg: initialisation config.
    """

    def __init__(self, bbox_roi_extractor: Mapping[str, Any] | None = None,
                 bbox_head: Mapping[str, Any] | None = None,
                 mask_roi_extractor: Mapping[str, Any] | None = None,
                 mask_head: Mapping[str, Any] | None = None, shared_head: Mapping[str, Any] | None = None,
                 train_cfg: Any = None, test_cfg: Any = None, init_cfg: Any = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        if shared_head is not None:
            self.shared_head = MODELS.build(shared_head)
        if bbox_head is not None:
            self.init_bbox_head(bbox_roi_extractor, bbox_head)
        if mask_head is not None:
            self.init_mask_head(mask_roi_extractor, mask_head)
        self.init_assigner_sampler()

    @property
    def with_bbox(self) -> bool:
        """Whether the head has a box branch."""
        return getattr(self, 'bbox_head', None) is not None

    @property
    def with_mask(self) -> bool:
        """Whether the head has a mask branch."""
        return getattr(self, 'mask_head', None) is not None

    @property
    def with_shared_head(self) -> bool:
        """Whether the head has a shared head."""
        return getattr(self, 'shared_head', None) is not None

    @abstractmethod
    def init_bbox_head(self, bbox_roi_extractor: Any, bbox_head: Any) -> None:
        """Build the box branch."""

    @abstractmethod
    def init_mask_head(self, mask_roi_extractor: Any, mask_head: Any) -> None:
        """Build the mask branch."""

    @abstractmethod
    def init_assigner_sampler(self) -> None:
        """Build the assigner and sampler from ``train_cfg``."""

    @abstractmethod
    def loss(self, x: tuple[Tensor, ...], rpn_results_list: Sequence[InstanceData],
             batch_data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """Losses of the second stage."""

    def predict(self, x: tuple[Tensor, ...], rpn_results_list: Sequence[InstanceData],
                batch_data_samples: Sequence[Any], rescale: bool = False) -> list[InstanceData]:
        """Detections from features ``x`` and per-image proposals (``bboxes`` (R_i, 4) xyxy pixels of the input
        image); metainfo comes from the data samples. With a mask branch the boxes are only rescaled by the mask
        head (as in MMDetection).

        Raises:
            RuntimeError: the head has no box branch.
        """
        if not self.with_bbox:
            raise RuntimeError(f'{type(self).__name__}.predict needs a bbox_head')
        metas = [dict(s.metainfo) for s in batch_data_samples]
        results = self.predict_bbox(x, metas, rpn_results_list, rcnn_test_cfg=self.test_cfg,
                                    rescale=rescale if not self.with_mask else False)
        if self.with_mask:
            results = self.predict_mask(x, metas, results, rescale=rescale)
        return results
