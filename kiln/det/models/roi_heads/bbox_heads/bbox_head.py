"""RoI box head base: classification + per-class box regression on pooled RoI features (Fast R-CNN, Girshick,
ICCV 2015); MMDetection 3.x ``BBoxHead`` semantics (targets, losses, post-processing)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kiln.model import BaseModule
from kiln.registry import MODELS
from kiln.structures import InstanceData

from ...layers.bbox_nms import _cfg_get, multiclass_nms
from ...losses.accuracy import accuracy


def _build_linear(cfg: Mapping[str, Any], in_features: int, out_features: int) -> nn.Module:
    cfg = dict(cfg)
    if cfg.pop('type', 'Linear') != 'Linear':
        raise NotImplementedError(f'predictor config {cfg} is not supported (only type="Linear")')
    return nn.Linear(in_features, out_features, **cfg)


@MODELS.register_module()
class BBoxHead(BaseModule):
    """Simplest RoI head: (optional average pool) -> ``fc_cls`` (C + 1 logits, the last is background) and
    ``fc_reg`` (4 deltas per class, or 4 with ``reg_class_agnostic``).

    Args:
        with_avg_pool: average-pool the RoI feature to 1x1 before the predictors.
        with_cls, with_reg: build ``fc_cls`` / ``fc_reg``.
        roi_feat_size: pooled RoI size (int or (h, w)).
        in_channels: channels of the pooled RoI feature.
        num_classes: foreground classes C.
        bbox_coder: box coder config (Faster R-CNN: ``DeltaXYWHBBoxCoder`` with stds (0.1, 0.1, 0.2, 0.2)).
        predict_box_type: only ``'hbox'``.
        reg_class_agnostic: one box per RoI instead of one per class.
        reg_decoded_bbox: regress decoded boxes (IoU-type losses) instead of deltas.
        reg_predictor_cfg, cls_predictor_cfg: ``dict(type='Linear')``.
        loss_cls: softmax ``CrossEntropyLoss`` by default; loss_bbox: ``L1Loss``.
        init_cfg: default ``Normal(std=0.01)`` on ``fc_cls`` and ``Normal(std=0.001)`` on ``fc_reg``.

    ``forward(x (K, C_in, h, w))`` -> ``(cls_score (K, C + 1) logits, bbox_pred (K, 4 C) or (K, 4) deltas)``.

    Raises:
        ValueError: ``num_classes < 1``. NotImplementedError: unsupported box type or predictor.
    """

    def __init__(self, with_avg_pool: bool = False, with_cls: bool = True, with_reg: bool = True,
                 roi_feat_size: int | Sequence[int] = 7, in_channels: int = 256, num_classes: int = 80,
                 bbox_coder: Mapping[str, Any] = dict(type='DeltaXYWHBBoxCoder', clip_border=True,
                                                      target_means=[0., 0., 0., 0.],
                                                      target_stds=[0.1, 0.1, 0.2, 0.2]),
                 predict_box_type: str = 'hbox', reg_class_agnostic: bool = False, reg_decoded_bbox: bool = False,
                 reg_predictor_cfg: Mapping[str, Any] = dict(type='Linear'),
                 cls_predictor_cfg: Mapping[str, Any] = dict(type='Linear'),
                 loss_cls: Mapping[str, Any] = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_bbox: Mapping[str, Any] = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
                 init_cfg: Any = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not (with_cls or with_reg):
            raise ValueError('BBoxHead needs with_cls or with_reg')
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be >= 1, got {num_classes}')
        if predict_box_type != 'hbox':
            raise NotImplementedError(f'BBoxHead predict_box_type={predict_box_type!r} (only "hbox")')
        self.with_avg_pool = with_avg_pool
        self.with_cls = with_cls
        self.with_reg = with_reg
        self.roi_feat_size = ((roi_feat_size, roi_feat_size) if isinstance(roi_feat_size, int)
                              else tuple(roi_feat_size))
        self.roi_feat_area = self.roi_feat_size[0] * self.roi_feat_size[1]
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.predict_box_type = predict_box_type
        self.reg_class_agnostic = reg_class_agnostic
        self.reg_decoded_bbox = reg_decoded_bbox
        self.reg_predictor_cfg = dict(reg_predictor_cfg)
        self.cls_predictor_cfg = dict(cls_predictor_cfg)
        self.bbox_coder = MODELS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        if bool(dict(loss_cls).get('use_sigmoid', False)):
            raise NotImplementedError(f'{type(self).__name__}: only softmax classification (use_sigmoid=False) '
                                      f'is supported')
        self.cls_channels = num_classes + 1
        in_ch = in_channels if with_avg_pool else in_channels * self.roi_feat_area
        if with_avg_pool:
            self.avg_pool = nn.AvgPool2d(self.roi_feat_size)
        box_dim = self.bbox_coder.encode_size
        self.out_dim_reg = box_dim if reg_class_agnostic else box_dim * num_classes
        if with_cls:
            self.fc_cls = _build_linear(self.cls_predictor_cfg, in_ch, self.cls_channels)
        if with_reg:
            self.fc_reg = _build_linear(self.reg_predictor_cfg, in_ch, self.out_dim_reg)
        self.debug_imgs = None
        if init_cfg is None:
            self.init_cfg = []
            if with_cls:
                self.init_cfg.append(dict(type='Normal', std=0.01, override=dict(name='fc_cls')))
            if with_reg:
                self.init_cfg.append(dict(type='Normal', std=0.001, override=dict(name='fc_reg')))

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        if self.with_avg_pool:
            x = self.avg_pool(x) if x.numel() > 0 else x.new_zeros(x.shape[0], x.shape[1], 1, 1)
        x = x.flatten(1)
        return (self.fc_cls(x) if self.with_cls else None), (self.fc_reg(x) if self.with_reg else None)

    # ------------------------------------------------------------------ training
    def _get_targets_single(self, pos_priors: Tensor, neg_priors: Tensor, pos_gt_bboxes: Tensor,
                            pos_gt_labels: Tensor, cfg: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_pos, num_neg = pos_priors.size(0), neg_priors.size(0)
        num = num_pos + num_neg
        reg_dim = pos_gt_bboxes.size(-1) if self.reg_decoded_bbox else self.bbox_coder.encode_size
        labels = pos_priors.new_full((num,), self.num_classes, dtype=torch.long)
        label_weights = pos_priors.new_zeros(num)
        bbox_targets = pos_priors.new_zeros(num, reg_dim)
        bbox_weights = pos_priors.new_zeros(num, reg_dim)
        if num_pos > 0:
            labels[:num_pos] = pos_gt_labels
            pos_weight = _cfg_get(cfg, 'pos_weight', -1)
            label_weights[:num_pos] = 1.0 if pos_weight is None or pos_weight <= 0 else float(pos_weight)
            targets = (pos_gt_bboxes if self.reg_decoded_bbox
                       else self.bbox_coder.encode(pos_priors, pos_gt_bboxes))
            bbox_targets[:num_pos, :] = targets.to(bbox_targets.dtype)
            bbox_weights[:num_pos, :] = 1
        if num_neg > 0:
            label_weights[-num_neg:] = 1.0
        return labels, label_weights, bbox_targets, bbox_weights

    def get_targets(self, sampling_results: Sequence[Any], rcnn_train_cfg: Any,
                    concat: bool = True) -> tuple:
        """Targets of the sampled RoIs, positives first in each image: labels int64 (R,) (``num_classes`` =
        background), label weights (R,), bbox targets (R, 4) (deltas), bbox weights (R, 4); per image lists
        when ``concat=False``."""
        out = [self._get_targets_single(r.pos_priors, r.neg_priors, r.pos_gt_bboxes, r.pos_gt_labels,
                                        rcnn_train_cfg) for r in sampling_results]
        labels, label_w, bbox_t, bbox_w = (list(t) for t in zip(*out))
        if concat:
            return torch.cat(labels), torch.cat(label_w), torch.cat(bbox_t), torch.cat(bbox_w)
        return labels, label_w, bbox_t, bbox_w

    def loss_and_target(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, sampling_results: Sequence[Any],
                        rcnn_train_cfg: Any, concat: bool = True,
                        reduction_override: str | None = None) -> dict[str, Any]:
        """``dict(loss_bbox=dict(loss_cls, acc, loss_bbox), bbox_targets=(labels, label_weights, bbox_targets,
        bbox_weights))`` for the RoIs ``rois`` (R, 5) sampled in ``sampling_results``."""
        targets = self.get_targets(sampling_results, rcnn_train_cfg, concat=concat)
        losses = self.loss(cls_score, bbox_pred, rois, *targets, reduction_override=reduction_override)
        return dict(loss_bbox=losses, bbox_targets=targets)

    def loss(self, cls_score: Tensor | None, bbox_pred: Tensor | None, rois: Tensor, labels: Tensor,
             label_weights: Tensor, bbox_targets: Tensor, bbox_weights: Tensor,
             reduction_override: str | None = None) -> dict[str, Tensor]:
        """``loss_cls`` (softmax cross-entropy averaged over RoIs with non-zero weight), ``acc`` (top-1 accuracy
        in percent, logged, not optimised) and ``loss_bbox`` (box loss on the positives' deltas for their gt
        class, divided by the number of sampled RoIs)."""
        losses: dict[str, Tensor] = {}
        if cls_score is not None:
            avg_factor = (label_weights > 0).sum().float().clamp(min=1.0)
            if cls_score.numel() > 0:
                losses['loss_cls'] = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor,
                                                   reduction_override=reduction_override)
                losses['acc'] = accuracy(cls_score, labels)
        if bbox_pred is not None:
            pos = (labels >= 0) & (labels < self.num_classes)
            if bool(pos.any()):
                if self.reg_decoded_bbox:
                    bbox_pred = self.bbox_coder.decode(rois[:, 1:], bbox_pred)
                if self.reg_class_agnostic:
                    pos_pred = bbox_pred.view(bbox_pred.size(0), -1)[pos]
                else:
                    pos_pred = bbox_pred.view(bbox_pred.size(0), self.num_classes, -1)[pos, labels[pos]]
                losses['loss_bbox'] = self.loss_bbox(pos_pred, bbox_targets[pos], bbox_weights[pos],
                                                     avg_factor=bbox_targets.size(0),
                                                     reduction_override=reduction_override)
            else:
                losses['loss_bbox'] = bbox_pred[pos].sum()
        return losses

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, rois: Sequence[Tensor], cls_scores: Sequence[Tensor],
                        bbox_preds: Sequence[Tensor | None], batch_img_metas: Sequence[Mapping[str, Any]],
                        rcnn_test_cfg: Any = None, rescale: bool = False) -> list[InstanceData]:
        """Detections of every image from its RoIs' head outputs.

        Args:
            rois: per image, float (R_i, 5) ``(batch_index, x1, y1, x2, y2)`` input-image pixels.
            cls_scores: per image, float (R_i, C + 1) logits.
            bbox_preds: per image, float (R_i, 4 C) (or (R_i, 4)) deltas, or None.
            batch_img_metas: per image, ``img_shape`` (h, w) (boxes are clipped to it), and for ``rescale``
                ``scale_factor`` (w_scale, h_scale).
            rcnn_test_cfg: ``score_thr``, ``nms`` (per class), ``max_per_img``; ``None`` returns every RoI's
                decoded boxes (R, 4 C) and softmax scores (R, C + 1) without NMS.
            rescale: map boxes to the original image (multiply by ``1 / scale_factor``).

        Returns:
            One ``InstanceData`` per image with ``bboxes`` float32 (K, 4) xyxy pixels, ``scores`` (K,),
            ``labels`` int64 (K,) and ``scores_per_class`` float (K, C): the foreground columns of the softmax
            of the RoI that produced the detection (the background column is dropped, so a row sums to less
            than 1); ``scores_per_class[i, labels[i]] == scores[i]``.
        """
        if not (len(rois) == len(cls_scores) == len(bbox_preds) == len(batch_img_metas)):
            raise ValueError(f'predict_by_feat: {len(rois)} rois, {len(cls_scores)} cls_scores, {len(bbox_preds)} '
                             f'bbox_preds and {len(batch_img_metas)} image metas must agree')
        return [self._predict_by_feat_single(r, c, b, m, rcnn_test_cfg, rescale)
                for r, c, b, m in zip(rois, cls_scores, bbox_preds, batch_img_metas)]

    def _empty_result(self, ref: Tensor) -> InstanceData:
        return InstanceData(bboxes=ref.new_zeros((0, 4)), scores=ref.new_zeros((0,)),
                            labels=ref.new_zeros((0,), dtype=torch.long),
                            scores_per_class=ref.new_zeros((0, self.num_classes)))

    def _predict_by_feat_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Tensor | None,
                                img_meta: Mapping[str, Any], rcnn_test_cfg: Any, rescale: bool) -> InstanceData:
        if 'img_shape' not in img_meta:
            raise ValueError(f'image metainfo {sorted(img_meta)} has no img_shape (h, w)')
        if roi.shape[0] == 0:
            return self._empty_result(roi)
        scores = F.softmax(cls_score, dim=-1) if cls_score is not None else None
        num_rois = roi.size(0)
        if bbox_pred is not None:
            k = 1 if self.reg_class_agnostic else self.num_classes
            bboxes = self.bbox_coder.decode(roi[:, 1:], bbox_pred.view(num_rois, -1),
                                            max_shape=img_meta['img_shape'])
            bboxes = bboxes.view(num_rois * k, -1)
        else:
            bboxes = roi[:, 1:].clone()
            if img_meta.get('img_shape') is not None and bboxes.size(-1) == 4:
                h, w = img_meta['img_shape'][:2]
                bboxes = torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                                      bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], dim=-1)
        if rescale and bboxes.size(0) > 0:
            if img_meta.get('scale_factor') is None:
                raise ValueError(f'rescale=True needs scale_factor in the image metainfo ({sorted(img_meta)})')
            sw, sh = img_meta['scale_factor'][:2]
            bboxes = bboxes * bboxes.new_tensor([1 / sw, 1 / sh, 1 / sw, 1 / sh]).repeat(bboxes.size(-1) // 4)
        bboxes = bboxes.view(num_rois, -1)
        if rcnn_test_cfg is None:
            return InstanceData(bboxes=bboxes, scores=scores)
        dets, labels, inds = multiclass_nms(bboxes, scores, _cfg_get(rcnn_test_cfg, 'score_thr', 0.0),
                                            _cfg_get(rcnn_test_cfg, 'nms'), _cfg_get(rcnn_test_cfg, 'max_per_img', -1),
                                            return_inds=True)
        roi_inds = torch.div(inds, self.num_classes, rounding_mode='floor')
        return InstanceData(bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels,
                            scores_per_class=scores[roi_inds, :-1])
