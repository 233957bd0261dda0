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
    def get_anchors(self, featmap_sizes: Sequence[Any], batch_img_metas: Sequence[Mapping[str, Any]],
                    device: torch.device | str = 'cpu') -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        """Anchors and their valid flags for every image (MMDetection ``AnchorHead.get_anchors``).

        Args:
            featmap_sizes: per level, (H_l, W_l).
            batch_img_metas: per image, metainfo with ``pad_shape`` (h, w) (or ``batch_input_shape``).
            device: device of the returned tensors.

        Returns:
            ``(anchor_list, valid_flag_list)``: per image, per level float (P_l, 4) xyxy anchors (the same
            tensors for every image) and bool (P_l,) flags (False where an anchor's cell lies in the padding).

        Raises:
            ValueError: an image's metainfo has neither ``pad_shape`` nor ``batch_input_shape``.
        """
        anchors = self.prior_generator.grid_priors(featmap_sizes, device=device)
        anchor_list, valid_flag_list = [], []
        for i, meta in enumerate(batch_img_metas):
            pad_shape = meta.get('pad_shape', meta.get('batch_input_shape'))
            if pad_shape is None:
                raise ValueError(f'batch_img_metas[{i}] ({sorted(meta)}) has neither pad_shape nor '
                                 f'batch_input_shape; the data preprocessor sets them')
            anchor_list.append(anchors)
            valid_flag_list.append(self.prior_generator.valid_flags(featmap_sizes, pad_shape[:2], device))
        return anchor_list, valid_flag_list

    def get_targets(self, anchor_list: Sequence[Sequence[Tensor]], valid_flag_list: Sequence[Sequence[Tensor]],
                    batch_gt_instances: Sequence[Any], batch_img_metas: Sequence[Mapping[str, Any]],
                    batch_gt_instances_ignore: Sequence[Any] | None = None
                    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], Tensor]:
        """Classification and regression targets of a batch (MMDetection ``AnchorHead.get_targets``).

        Args:
            anchor_list, valid_flag_list: from :meth:`get_anchors`.
            batch_gt_instances: per image, ``bboxes`` float (K, 4) xyxy pixels and ``labels`` int64 (K,).
            batch_img_metas: per image, metainfo (``img_shape`` for ``allowed_border``).
            batch_gt_instances_ignore: per image, instances whose boxes the assigner ignores, or None.

        Returns:
            ``(labels, label_weights, bbox_targets, bbox_weights, avg_factor)``: the first four are per-level
            lists of (N, P_l) int64 labels (``num_classes`` = background), (N, P_l) float weights, (N, P_l, 4)
            targets (deltas, or xyxy boxes with ``reg_decoded_bbox``) and (N, P_l, 4) weights; ``avg_factor``
            is a 0-dim float tensor, the sum over images of ``max(positives, 1)`` (MMDetection's
            ``SamplingResult.avg_factor`` with ``PseudoSampler``).
        """
        num_imgs = len(batch_img_metas)
        if len(anchor_list) != num_imgs or len(batch_gt_instances) != num_imgs:
            raise ValueError(f'get_targets: {len(anchor_list)} anchor lists and {len(batch_gt_instances)} '
                             f'gt_instances for {num_imgs} images')
        num_level_anchors = [a.size(0) for a in anchor_list[0]]
        ignores = batch_gt_instances_ignore or [None] * num_imgs
        results = [self._get_targets_single(torch.cat(anchors), torch.cat(flags), gt, meta, ign)
                   for anchors, flags, gt, meta, ign in zip(anchor_list, valid_flag_list, batch_gt_instances,
                                                            batch_img_metas, ignores)]
        avg_factor = torch.stack([torch.as_tensor(r[4], dtype=torch.float32, device=results[0][0].device)
                                  for r in results]).sum()
        per_level = []
        for j in range(4):
            stacked = torch.stack([r[j] for r in results])  # (N, P, ...)
            per_level.append(list(stacked.split(num_level_anchors, dim=1)))
        return per_level[0], per_level[1], per_level[2], per_level[3], avg_factor

    def _get_targets_single(self, flat_anchors: Tensor, valid_flags: Tensor, gt_instances: Any,
                            img_meta: Mapping[str, Any], gt_instances_ignore: Any = None) -> tuple[Tensor, ...]:
        """Targets of one image over all its anchors (P, 4).

        Anchors outside the valid region (padding, or beyond ``allowed_border``) get zero weights. Instead of
        indexing the inside anchors (a host sync), they are replaced by empty boxes at the origin, which overlap
        nothing, and masked out afterwards.

        Returns:
            labels int64 (P,) (``num_classes`` = background), label weights (P,), bbox targets (P, 4), bbox
            weights (P, 4) and ``avg_factor`` (0-dim: ``max(positives, 1)``).
        """
        device = flat_anchors.device
        inside = valid_flags.to(device)
        border = _cfg_get(self.train_cfg, 'allowed_border', -1)
        if border is not None and border >= 0:
            h, w = img_meta['img_shape'][:2]
            inside = inside & (flat_anchors[:, 0] >= -border) & (flat_anchors[:, 1] >= -border) & \
                (flat_anchors[:, 2] < w + border) & (flat_anchors[:, 3] < h + border)
        gt_bboxes = gt_instances.bboxes.to(device=device, dtype=flat_anchors.dtype)
        gt_instances = InstanceData(bboxes=gt_bboxes, labels=gt_instances.labels.to(device))
        priors = torch.where(inside[:, None], flat_anchors, flat_anchors.new_zeros(()))
        assign = self.assigner.assign(InstanceData(priors=priors), gt_instances, gt_instances_ignore)
        pos = (assign.gt_inds > 0) & inside
        neg = (assign.gt_inds == 0) & inside
        labels = torch.where(pos, assign.labels, assign.labels.new_full((), self.num_classes))
        pos_weight = _cfg_get(self.train_cfg, 'pos_weight', -1)
        pos_w = 1.0 if pos_weight is None or pos_weight <= 0 else float(pos_weight)
        label_w = pos.to(flat_anchors.dtype) * pos_w + neg.to(flat_anchors.dtype)
        if gt_bboxes.numel() > 0:
            matched = gt_bboxes[(assign.gt_inds - 1).clamp(min=0)]
            matched = torch.where(pos[:, None], matched, flat_anchors)
        else:
            matched = flat_anchors
        targets = matched if self.reg_decoded_bbox else self.bbox_coder.encode(flat_anchors, matched)
        targets = torch.where(pos[:, None], targets, targets.new_zeros(()))
        bbox_w = pos[:, None].to(flat_anchors.dtype).expand(-1, 4)
        avg_factor = pos.sum().clamp(min=1).to(torch.float32)
        return labels, label_w, targets, bbox_w, avg_factor

    def loss_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, anchors: Tensor, labels: Tensor,
                            label_weights: Tensor, bbox_targets: Tensor, bbox_weights: Tensor,
                            avg_factor: Tensor | float) -> tuple[Tensor, Tensor]:
        """Losses of one level: cls_score (N, A * C, H, W), bbox_pred (N, A * 4, H, W), anchors (N, P_l, 4) and
        the level's targets from :meth:`get_targets`; returns ``(loss_cls, loss_bbox)`` (0-dim), each summed
        over the level and divided by the batch's ``avg_factor``."""
        labels = labels.reshape(-1)
        label_weights = label_weights.reshape(-1)
        cls_score = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
        loss_cls = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor)
        dim = self.bbox_coder.encode_size
        bbox_targets = bbox_targets.reshape(-1, bbox_targets.size(-1))
        bbox_weights = bbox_weights.reshape(-1, bbox_weights.size(-1))
        bbox_pred = bbox_pred.permute(0, 2, 3, 1).reshape(-1, dim)
        if self.reg_decoded_bbox:
            bbox_pred = self.bbox_coder.decode(anchors.reshape(-1, anchors.size(-1)), bbox_pred)
        loss_bbox = self.loss_bbox(bbox_pred, bbox_targets, bbox_weights, avg_factor=avg_factor)
        return loss_cls, loss_bbox

    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                     batch_gt_instances: Sequence[Any], batch_img_metas: Sequence[Mapping[str, Any]],
                     batch_gt_instances_ignore: Sequence[Any] | None = None) -> dict[str, list[Tensor]]:
        """``dict(loss_cls=[...], loss_bbox=[...])``: one 0-dim tensor per level (as MMDetection returns them;
        the runner's ``parse_losses`` sums the levels), normalised by the batch's ``avg_factor``.

        Args:
            cls_scores, bbox_preds: per level, (N, A * C, H, W) logits and (N, A * 4, H, W) deltas.
            batch_gt_instances: per image, ``bboxes`` float (K, 4) xyxy pixels of the input image and ``labels``.
            batch_img_metas: per image, metainfo with ``img_shape`` and ``pad_shape``.
            batch_gt_instances_ignore: per image, instances to ignore, or None.

        Raises:
            RuntimeError: the head has no ``train_cfg`` (assigner).
        """
        if self.assigner is None:
            raise RuntimeError(f'{type(self).__name__}.loss needs train_cfg with an assigner')
        if len(cls_scores) != len(bbox_preds):
            raise ValueError(f'{len(cls_scores)} cls_scores levels vs {len(bbox_preds)} bbox_preds levels')
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas, device=device)
        labels, label_w, bbox_t, bbox_w, avg_factor = self.get_targets(
            anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas, batch_gt_instances_ignore)
        num_imgs = len(batch_img_metas)
        level_anchors = [a[None].expand(num_imgs, -1, -1) for a in anchor_list[0]]
        losses_cls, losses_bbox = multi_apply(self.loss_by_feat_single, cls_scores, bbox_preds, level_anchors,
                                              labels, label_w, bbox_t, bbox_w, avg_factor=avg_factor)
        return dict(loss_cls=losses_cls, loss_bbox=losses_bbox)
