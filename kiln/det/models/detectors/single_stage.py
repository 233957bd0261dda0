"""``SingleStageDetector``: backbone -> neck -> dense head (MMDetection 3.x)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor

from kiln.registry import MODELS

from .base import BaseDetector


@MODELS.register_module()
class SingleStageDetector(BaseDetector):
    """One-stage detector.

    Args:
        backbone, neck, bbox_head: configs built with ``kiln.registry.MODELS`` (attribute names ``backbone``,
            ``neck``, ``bbox_head`` as in MMDetection, so state-dict keys line up).
        train_cfg, test_cfg: passed to the head as its ``train_cfg`` / ``test_cfg``.
        data_preprocessor: config of the data preprocessor (e.g. ``DetDataPreprocessor``).
        init_cfg: initialisation config.

    Raises:
        ValueError: ``bbox_head`` missing.
    """

    def __init__(self, backbone: Mapping[str, Any], neck: Mapping[str, Any] | None = None,
                 bbox_head: Mapping[str, Any] | None = None, train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None, data_preprocessor: Any = None,
                 init_cfg: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if bbox_head is None:
            raise ValueError(f'{type(self).__name__} needs a bbox_head config')
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        head_cfg = dict(bbox_head)
        head_cfg.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(head_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        """float32 (N, 3, H, W) -> tuple of per-level features (N, C, H_l, W_l)."""
        x = self.backbone(batch_inputs)
        return self.neck(x) if self.with_neck else x

    def loss(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """Head losses (e.g. ``loss_cls``, ``loss_bbox``, ``loss_centerness``) for a batch whose data samples
        carry ``gt_instances``."""
        if batch_data_samples is None:
            raise ValueError("mode='loss' needs data_samples with gt_instances")
        return self.bbox_head.loss(self.extract_feat(batch_inputs), batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any], rescale: bool = True) -> list:
        """Run the head's post-processing; returns the data samples with ``pred_instances`` (``bboxes`` float32
        (K, 4) xyxy pixels in the original image when ``rescale``, ``scores``, ``labels``,
        ``scores_per_class``)."""
        if batch_data_samples is None:
            raise ValueError("mode='predict' needs data_samples (their metainfo gives img_shape, scale_factor, "
                             "ori_shape)")
        results = self.bbox_head.predict(self.extract_feat(batch_inputs), batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any] | None = None) -> tuple:
        """Raw head outputs (e.g. FCOS: cls_scores, bbox_preds, centernesses, each a list over levels)."""
        return self.bbox_head.forward(self.extract_feat(batch_inputs))
