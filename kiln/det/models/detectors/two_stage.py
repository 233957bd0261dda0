"""``TwoStageDetector``: backbone -> neck -> RPN head (proposals) -> RoI head (MMDetection 3.x)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor

from kiln.registry import MODELS

from ..layers.bbox_nms import _cfg_get
from .base import BaseDetector


@MODELS.register_module()
class TwoStageDetector(BaseDetector):
    """Two-stage detector (Faster R-CNN, Mask R-CNN...).

    Args:
        backbone, neck: configs built with ``kiln.registry.MODELS``.
        rpn_head: RPN config (``num_classes`` forced to 1); it receives ``train_cfg.rpn`` / ``test_cfg.rpn``.
        roi_head: RoI head config (e.g. ``StandardRoIHead``); it receives ``train_cfg.rcnn`` /
            ``test_cfg.rcnn``.
        train_cfg: ``dict(rpn=..., rpn_proposal=..., rcnn=...)``; ``rpn_proposal`` configures the proposals used
            for training (default ``test_cfg.rpn``).
        test_cfg: ``dict(rpn=..., rcnn=...)``.
        data_preprocessor, init_cfg: as for every model.

    Attribute names (``backbone``, ``neck``, ``rpn_head``, ``roi_head``) match MMDetection, so checkpoints
    load with ``strict=True``.

    Without an RPN head the proposals come from ``data_sample.proposals`` (``bboxes`` (R, 4) xyxy pixels of the
    input image).

    Raises:
        ValueError: a head config without the ``test_cfg`` part it needs.
    """

    def __init__(self, backbone: Mapping[str, Any], neck: Mapping[str, Any] | None = None,
                 rpn_head: Mapping[str, Any] | None = None, roi_head: Mapping[str, Any] | None = None,
                 train_cfg: Mapping[str, Any] | None = None, test_cfg: Mapping[str, Any] | None = None,
                 data_preprocessor: Any = None, init_cfg: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        if rpn_head is not None:
            rpn_cfg = dict(rpn_head)
            rpn_cfg.update(train_cfg=_cfg_get(train_cfg, 'rpn'), test_cfg=_cfg_get(test_cfg, 'rpn'))
            rpn_cfg['num_classes'] = 1
            self.rpn_head = MODELS.build(rpn_cfg)
        if roi_head is not None:
            roi_cfg = dict(roi_head)
            roi_cfg.update(train_cfg=_cfg_get(train_cfg, 'rcnn'), test_cfg=_cfg_get(test_cfg, 'rcnn'))
            self.roi_head = MODELS.build(roi_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    @property
    def with_rpn(self) -> bool:
        """Whether the detector has an RPN head."""
        return getattr(self, 'rpn_head', None) is not None

    @property
    def with_roi_head(self) -> bool:
        """Whether the detector has a RoI head."""
        return getattr(self, 'roi_head', None) is not None

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        """float32 (N, 3, H, W) -> tuple of per-level features (N, C, H_l, W_l)."""
        x = self.backbone(batch_inputs)
        return self.neck(x) if self.with_neck else x

    def _proposals(self, x: tuple[Tensor, ...], batch_data_samples: Sequence[Any]) -> list:
        if self.with_rpn:
            return self.rpn_head.predict(x, batch_data_samples, rescale=False)
        missing = [i for i, s in enumerate(batch_data_samples) if 'proposals' not in s]
        if missing:
            raise ValueError(f'{type(self).__name__} has no rpn_head and data_samples{missing} carry no proposals')
        return [s.proposals for s in batch_data_samples]

    def loss(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """``loss_rpn_cls`` / ``loss_rpn_bbox`` (lists over FPN levels) and the RoI head's losses
        (``loss_cls``, ``acc``, ``loss_bbox`` [, ``loss_mask``]) for data samples with ``gt_instances``."""
        if batch_data_samples is None:
            raise ValueError("mode='loss' needs data_samples with gt_instances")
        x = self.extract_feat(batch_inputs)
        losses: dict[str, Any] = {}
        if self.with_rpn:
            proposal_cfg = _cfg_get(self.train_cfg, 'rpn_proposal', _cfg_get(self.test_cfg, 'rpn'))
            rpn_losses, rpn_results = self.rpn_head.loss_and_predict(x, batch_data_samples, proposal_cfg=proposal_cfg)
            for key in list(rpn_losses):
                if 'loss' in key and 'rpn' not in key:
                    rpn_losses[f'rpn_{key}'] = rpn_losses.pop(key)
            losses.update(rpn_losses)
        else:
            rpn_results = self._proposals(x, batch_data_samples)
        losses.update(self.roi_head.loss(x, rpn_results, batch_data_samples))
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any], rescale: bool = True) -> list:
        """Data samples with ``pred_instances``: ``bboxes`` float32 (K, 4) xyxy pixels (original image when
        ``rescale``), ``scores`` (K,), ``labels`` int64 (K,), ``scores_per_class`` (K, C) (foreground softmax
        columns of the detection's RoI, background dropped) [, ``masks``]."""
        if batch_data_samples is None:
            raise ValueError("mode='predict' needs data_samples (their metainfo gives img_shape, scale_factor, "
                             "ori_shape)")
        x = self.extract_feat(batch_inputs)
        results = self.roi_head.predict(x, self._proposals(x, batch_data_samples), batch_data_samples,
                                        rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any] | None = None) -> tuple:
        """``(roi_head outputs,)``: the RoI head's raw outputs on the RPN proposals (``cls_score``,
        ``bbox_pred`` [, ``mask_preds``]); needs data samples for the image metainfo."""
        if batch_data_samples is None:
            raise ValueError("mode='tensor' of a two-stage detector needs data_samples (img_shape for proposals)")
        x = self.extract_feat(batch_inputs)
        return (self.roi_head.forward(x, self._proposals(x, batch_data_samples), batch_data_samples),)
