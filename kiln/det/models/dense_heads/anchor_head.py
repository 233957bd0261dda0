"""Anchor-based dense head base (MMDetection 3.x ``AnchorHead``), with mask-based targets (no per-image sync)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from kiln.registry import MODELS
from kiln.structures import InstanceData

from ..utils import multi_apply
from .base_dense_head import BaseDenseHead, _cfg_get


@MODELS.register_module()
class AnchorHead(BaseDenseHead):
    """Anchor head with 1x1 ``conv_cls`` / ``conv_reg`` predictors (subclasses such as ``RetinaHead`` add towers).

    Args:
        num_classes: foreground classes C.
        in_channels: neck channels.
        feat_channels: tower channels (used by subclasses).
        anchor_generator, bbox_coder, loss_cls, loss_bbox: registered configs.
        reg_decoded_bbox: regress decoded boxes (for IoU-type losses) instead of deltas.
        train_cfg: ``assigner`` (e.g. ``MaxIoUAssigner``), optional ``sampler`` (only ``PseudoSampler``),
            ``allowed_border`` (-1: keep all anchors; >= 0: drop anchors crossing the image border by more than
            this many pixels), ``pos_weight`` (<= 0: 1.0).
        test_cfg: see :class:`BaseDenseHead`.
        init_cfg: default ``Normal(std=0.01)`` on convs.

    Outputs per level: cls_score (N, A * C, H, W) logits, bbox_pred (N, A * 4, H, W) deltas.
    """

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int = 256,
                 anchor_generator: Mapping[str, Any] = dict(type='AnchorGenerator', scales=[8, 16, 32],
                                                            ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
                 bbox_coder: Mapping[str, Any] = dict(type='DeltaXYWHBBoxCoder', clip_border=True,
                                                      target_means=(.0, .0, .0, .0), target_stds=(1., 1., 1., 1.)),
                 reg_decoded_bbox: bool = False,
                 loss_cls: Mapping[str, Any] = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 loss_bbox: Mapping[str, Any] = dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
                 train_cfg: Mapping[str, Any] | None = None, test_cfg: Mapping[str, Any] | None = None,
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01)) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.use_sigmoid_cls = bool(loss_cls.get('use_sigmoid', False))
        if not self.use_sigmoid_cls:
            raise NotImplementedError(f'{type(self).__name__}: only sigmoid classification losses are supported')
        self.cls_out_channels = num_classes
        self.reg_decoded_bbox = reg_decoded_bbox
        self.bbox_coder = MODELS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.assigner = self.sampler = None
        if train_cfg is not None:
            if _cfg_get(train_cfg, 'assigner') is None:
                raise ValueError(f'{type(self).__name__}: train_cfg needs an "assigner"')
            self.assigner = MODELS.build(_cfg_get(train_cfg, 'assigner'))
            sampler = _cfg_get(train_cfg, 'sampler', dict(type='PseudoSampler'))
            if _cfg_get(sampler, 'type') != 'PseudoSampler':
                raise NotImplementedError(f'{type(self).__name__}: sampler {sampler} is not supported '
                                          f'(only PseudoSampler)')
            self.sampler = MODELS.build(sampler)
        self.prior_generator = MODELS.build(anchor_generator)
        self.num_base_priors = self.prior_generator.num_base_priors[0]
        self._init_layers()

    def _init_layers(self) -> None:
        self.conv_cls = nn.Conv2d(self.in_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.conv_reg = nn.Conv2d(self.in_channels, self.num_base_priors * 4, 1)

    def forward(self, x: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per-level (cls_scores, bbox_preds)."""
        if len(x) != self.prior_generator.num_levels:
            raise ValueError(f'{type(self).__name__} has {self.prior_generator.num_levels} anchor levels but got '
                             f'{len(x)} feature levels')
        return multi_apply(self.forward_single, x)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.conv_cls(x), self.conv_reg(x)

    # ------------------------------------------------------------------ training
    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                     batch_gt_instances: Sequence[Any], batch_img_metas: Sequence[Mapping[str, Any]],
                     batch_gt_instances_ignore: Sequence[Any] | None = None) -> dict[str, Tensor]:
        """``dict(loss_cls, loss_bbox)``, both normalised by the number of positive anchors in the batch."""
        if self.assigner is None:
            raise RuntimeError(f'{type(self).__name__}.loss needs train_cfg with an assigner')
        num_imgs = cls_scores[0].size(0)
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        device, dtype = cls_scores[0].device, cls_scores[0].dtype
        anchors_lvl = self.prior_generator.grid_priors(featmap_sizes, dtype=dtype, device=device)
        anchors = torch.cat(anchors_lvl)
        ignores = batch_gt_instances_ignore or [None] * num_imgs
        labels, label_w, bbox_t, bbox_w = multi_apply(self._get_targets_single, [anchors] * num_imgs,
                                                      [featmap_sizes] * num_imgs, batch_gt_instances,
                                                      batch_img_metas, ignores)
        labels, label_w = torch.cat(labels), torch.cat(label_w)
        bbox_t, bbox_w = torch.cat(bbox_t), torch.cat(bbox_w)
        avg_factor = (bbox_w[:, 0] > 0).sum().to(dtype).clamp(min=1.0)

        flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
                              for c in cls_scores], 1).reshape(-1, self.cls_out_channels)
        flat_bbox = torch.cat([b.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4) for b in bbox_preds], 1)
        flat_bbox = flat_bbox.reshape(-1, 4)
        loss_cls = self.loss_cls(flat_cls, labels, label_w, avg_factor=avg_factor)
        if self.reg_decoded_bbox:
            flat_bbox = self.bbox_coder.decode(anchors.repeat(num_imgs, 1), flat_bbox)
        loss_bbox = self.loss_bbox(flat_bbox, bbox_t, bbox_w, avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)

    def _get_targets_single(self, anchors: Tensor, featmap_sizes: Sequence[Any], gt_instances: Any,
                            img_meta: Mapping[str, Any], gt_instances_ignore: Any) -> tuple[Tensor, ...]:
        """Targets of one image over all anchors (P, 4): labels int64 (P,) (``num_classes`` = background),
        label weights (P,), bbox targets (P, 4) (deltas, or boxes with ``reg_decoded_bbox``), bbox weights (P, 4)."""
        device = anchors.device
        valid = torch.cat(self.prior_generator.valid_flags(
            featmap_sizes, img_meta.get('pad_shape', img_meta.get('batch_input_shape', (1e9, 1e9)))[:2], device))
        border = _cfg_get(self.train_cfg, 'allowed_border', -1)
        if border is not None and border >= 0:
            h, w = img_meta['img_shape'][:2]
            valid = valid & (anchors[:, 0] >= -border) & (anchors[:, 1] >= -border) & \
                (anchors[:, 2] < w + border) & (anchors[:, 3] < h + border)
        gt_bboxes = gt_instances.bboxes.to(device=device, dtype=anchors.dtype)
        gt_instances = InstanceData(bboxes=gt_bboxes, labels=gt_instances.labels.to(device))
        # invalid anchors become empty boxes at the origin (IoU 0 with everything) and get zero weight below
        priors = torch.where(valid[:, None], anchors, anchors.new_zeros(()))
        assign = self.assigner.assign(InstanceData(priors=priors), gt_instances, gt_instances_ignore)
        pos = (assign.gt_inds > 0) & valid
        neg = (assign.gt_inds == 0) & valid
        labels = torch.where(pos, assign.labels, assign.labels.new_full((), self.num_classes))
        pos_weight = _cfg_get(self.train_cfg, 'pos_weight', -1)
        pos_w = 1.0 if pos_weight is None or pos_weight <= 0 else float(pos_weight)
        label_w = pos.to(anchors.dtype) * pos_w + neg.to(anchors.dtype)
        if gt_bboxes.numel() > 0:
            matched = gt_bboxes[(assign.gt_inds - 1).clamp(min=0)]
            matched = torch.where(pos[:, None], matched, anchors)
        else:
            matched = anchors
        targets = matched if self.reg_decoded_bbox else self.bbox_coder.encode(anchors, matched)
        targets = torch.where(pos[:, None], targets, targets.new_zeros(()))
        bbox_w = pos[:, None].to(anchors.dtype).expand(-1, 4)
        return labels, label_w, targets, bbox_w
