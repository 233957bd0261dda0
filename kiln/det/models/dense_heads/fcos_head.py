"""FCOS head (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019).

Semantics of MMDetection 3.x ``FCOSHead``; the target assignment is vectorised over the whole batch
(points x padded ground truths) with no Python loop over images, points or boxes, and the losses use masks
instead of indexing, so a training step has no host-device synchronisation.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from kiln.registry import MODELS

from ..layers import Scale
from ..utils import multi_apply, reduce_mean
from .anchor_free_head import AnchorFreeHead

INF = 1e8


@MODELS.register_module()
class FCOSHead(AnchorFreeHead):
    """FCOS head: per-point class scores, (left, top, right, bottom) distances and centerness.

    Args:
        num_classes: foreground classes C.
        in_channels: neck channels.
        feat_channels, stacked_convs, strides, conv_bias, dcn_on_last_conv: see :class:`AnchorFreeHead`.
        regress_ranges: per level, the (min, max) range of a point's largest target distance (pixels) for it to
            be a positive of that level.
        center_sampling: positives only within ``center_sample_radius * stride`` of a box centre (FCOS
            improvements), still inside the box.
        center_sample_radius: see above.
        norm_on_bbox: regress distances in units of the level stride (ReLU instead of exp on the output).
        centerness_on_reg: predict centerness from the regression tower instead of the classification tower.
        norm_cfg: tower norm (default GN, 32 groups).
        loss_cls: default ``FocalLoss(use_sigmoid=True, gamma=2, alpha=0.25)``, normalised by the number of
            positives.
        loss_bbox: default ``IoULoss`` on decoded boxes of the positives, weighted by the centerness targets and
            normalised by their sum.
        loss_centerness: default ``CrossEntropyLoss(use_sigmoid=True)`` on the positives, normalised by their
            number.
        train_cfg, test_cfg, init_cfg: see :class:`AnchorFreeHead`.

    Forward: tuple of L feature maps (N, in_channels, H_l, W_l) -> (cls_scores: L x (N, C, H_l, W_l) logits,
    bbox_preds: L x (N, 4, H_l, W_l) positive distances in pixels (in strides with ``norm_on_bbox`` while
    training), centernesses: L x (N, 1, H_l, W_l) logits).

    Module names match MMDetection (``cls_convs.i.conv``, ``cls_convs.i.gn``, ``conv_cls``, ``conv_reg``,
    ``conv_centerness``, ``scales.i.scale``).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 regress_ranges: Sequence[tuple[float, float]] = ((-1, 64), (64, 128), (128, 256), (256, 512),
                                                                  (512, INF)),
                 center_sampling: bool = False, center_sample_radius: float = 1.5, norm_on_bbox: bool = False,
                 centerness_on_reg: bool = False,
                 loss_cls: Mapping[str, Any] = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                                    loss_weight=1.0),
                 loss_bbox: Mapping[str, Any] = dict(type='IoULoss', loss_weight=1.0),
                 loss_centerness: Mapping[str, Any] = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                                           loss_weight=1.0),
                 norm_cfg: Mapping[str, Any] | None = dict(type='GN', num_groups=32, requires_grad=True),
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01,
                                      override=dict(type='Normal', name='conv_cls', std=0.01, bias_prob=0.01)),
                 **kwargs: Any) -> None:
        self.regress_ranges = tuple(tuple(float(v) for v in r) for r in regress_ranges)
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.norm_on_bbox = norm_on_bbox
        self.centerness_on_reg = centerness_on_reg
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, loss_bbox=loss_bbox, norm_cfg=norm_cfg,
                         init_cfg=init_cfg, **kwargs)
        if len(self.regress_ranges) != len(self.strides):
            raise ValueError(f'FCOSHead: {len(self.regress_ranges)} regress_ranges for {len(self.strides)} '
                             f'strides {self.strides}')
        if not self.use_sigmoid_cls:
            raise NotImplementedError('FCOSHead needs a sigmoid classification loss (use_sigmoid=True)')
        self.loss_centerness = MODELS.build(loss_centerness)

    def _init_layers(self) -> None:
        super()._init_layers()
        self.conv_centerness = nn.Conv2d(self.feat_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)

    def forward(self, x: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """See the class docstring."""
        if len(x) != len(self.strides):
            raise ValueError(f'FCOSHead has {len(self.strides)} strides {self.strides} but got {len(x)} feature '
                             f'levels')
        return multi_apply(self.forward_single, x, self.scales, self.strides)

    def forward_single(self, x: Tensor, scale: Scale, stride: int) -> tuple[Tensor, Tensor, Tensor]:
        """One level -> (cls_score (N, C, H, W), bbox_pred (N, 4, H, W), centerness (N, 1, H, W))."""
        cls_score, bbox_pred, cls_feat, reg_feat = super().forward_single(x)
        centerness = self.conv_centerness(reg_feat if self.centerness_on_reg else cls_feat)
        bbox_pred = scale(bbox_pred).float()
        if self.norm_on_bbox:
            bbox_pred = bbox_pred.clamp(min=0)
            if not self.training:
                bbox_pred = bbox_pred * stride
        else:
            bbox_pred = bbox_pred.exp()
        return cls_score, bbox_pred, centerness

    # ------------------------------------------------------------------ training
    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                     centernesses: Sequence[Tensor], batch_gt_instances: Sequence[Any],
                     batch_img_metas: Sequence[Mapping[str, Any]],
                     batch_gt_instances_ignore: Sequence[Any] | None = None) -> dict[str, Tensor]:
        """``dict(loss_cls, loss_bbox, loss_centerness)`` (0-dim tensors); ignored instances are not used
        (as in MMDetection's FCOS)."""
        if not len(cls_scores) == len(bbox_preds) == len(centernesses):
            raise ValueError('FCOSHead.loss_by_feat: cls_scores, bbox_preds and centernesses differ in levels')
        num_imgs = cls_scores[0].size(0)
        if len(batch_gt_instances) != num_imgs:
            raise ValueError(f'FCOSHead: {len(batch_gt_instances)} gt_instances for a batch of {num_imgs} images')
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        device = bbox_preds[0].device
        points = self.prior_generator.grid_priors(featmap_sizes, dtype=bbox_preds[0].dtype, device=device)
        labels, bbox_targets = self.get_targets(points, batch_gt_instances)  # (B, P), (B, P, 4)

        flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
                              for c in cls_scores], 1).reshape(-1, self.cls_out_channels)
        flat_bbox = torch.cat([b.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4) for b in bbox_preds], 1)
        flat_bbox = flat_bbox.reshape(-1, 4)
        flat_ctr = torch.cat([c.permute(0, 2, 3, 1).reshape(num_imgs, -1) for c in centernesses], 1).reshape(-1)
        flat_points = torch.cat(points).repeat(num_imgs, 1)
        labels, bbox_targets = labels.reshape(-1), bbox_targets.reshape(-1, 4)

        pos = (labels >= 0) & (labels < self.num_classes)
        num_pos = reduce_mean(pos.sum().to(flat_bbox.dtype)).clamp(min=1.0)
        loss_cls = self.loss_cls(flat_cls, labels, avg_factor=num_pos)

        # Negatives get dummy unit distances (finite IoU / centerness) and zero weight; torch.where also blocks
        # their gradient, so only positives contribute, as in the reference implementation.
        pos4 = pos[:, None]
        ones = flat_bbox.new_ones(())
        safe_targets = torch.where(pos4, bbox_targets, ones)
        safe_preds = torch.where(pos4, flat_bbox, ones)
        ctr_targets = self.centerness_target(safe_targets) * pos
        ctr_denorm = reduce_mean(ctr_targets.sum().detach()).clamp(min=1e-6)
        loss_bbox = self.loss_bbox(self.bbox_coder.decode(flat_points, safe_preds),
                                   self.bbox_coder.decode(flat_points, safe_targets),
                                   weight=ctr_targets, avg_factor=ctr_denorm)
        loss_centerness = self.loss_centerness(flat_ctr, ctr_targets, weight=pos.to(flat_ctr.dtype),
                                               avg_factor=num_pos)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_centerness)

    def get_targets(self, points: Sequence[Tensor], batch_gt_instances: Sequence[Any]) -> tuple[Tensor, Tensor]:
        """Assign every point of every level to at most one ground-truth box, for the whole batch at once.

        A point is a candidate for box g when it lies inside g (or, with ``center_sampling``, inside the box's
        centre region of radius ``center_sample_radius * stride``) and its largest distance to g's sides is
        within its level's regress range; among the candidates the box of smallest area wins (first box on
        ties).

        Args:
            points: per level, float (P_l, 2) x, y pixels (from ``prior_generator``).
            batch_gt_instances: per image, ``bboxes`` float (K_i, 4) xyxy pixels and ``labels`` int64 (K_i,).

        Returns:
            labels: int64 (B, P), class index or ``num_classes`` for background.
            bbox_targets: float (B, P, 4) (left, top, right, bottom) distances in pixels (divided by the
            level stride with ``norm_on_bbox``); undefined (but finite) for background points.

        Raises:
            ValueError: a ground-truth field has the wrong shape (names the image index).
        """
        device, dtype = points[0].device, points[0].dtype
        num_imgs = len(batch_gt_instances)
        num_per_lvl = [p.size(0) for p in points]
        all_points = torch.cat(points)
        num_points = all_points.size(0)
        ranges = torch.cat([all_points.new_tensor(r).expand(n, 2) for r, n in zip(self.regress_ranges, num_per_lvl)])
        strides = torch.cat([all_points.new_full((n,), float(s)) for s, n in zip(self.strides, num_per_lvl)])

        boxes_list, labels_list = [], []
        for i, gt in enumerate(batch_gt_instances):
            b, lab = gt.bboxes, gt.labels
            if b.dim() != 2 or b.size(-1) != 4 or lab.shape != b.shape[:1]:
                raise ValueError(f'gt_instances[{i}]: expected bboxes (K, 4) and labels (K,), got '
                                 f'{tuple(b.shape)} and {tuple(lab.shape)}')
            boxes_list.append(b.to(device=device, dtype=dtype))
            labels_list.append(lab.to(device=device, dtype=torch.long))
        max_gts = max((len(b) for b in boxes_list), default=0)
        if max_gts == 0:
            return (torch.full((num_imgs, num_points), self.num_classes, dtype=torch.long, device=device),
                    all_points.new_ones((num_imgs, num_points, 4)))
        gt_boxes = pad_sequence(boxes_list, batch_first=True)                      # (B, G, 4)
        gt_labels = pad_sequence(labels_list, batch_first=True, padding_value=self.num_classes)  # (B, G)
        valid = pad_sequence([torch.ones(len(b), dtype=torch.bool, device=device) for b in boxes_list],
                             batch_first=True)                                       # (B, G)

        xs = all_points[None, :, 0, None]                                            # (1, P, 1)
        ys = all_points[None, :, 1, None]
        x1, y1, x2, y2 = (gt_boxes[:, None, :, k] for k in range(4))                 # (B, 1, G)
        bbox_targets = torch.stack((xs - x1, ys - y1, x2 - xs, y2 - ys), dim=-1)     # (B, P, G, 4)

        if self.center_sampling:
            radius = (strides * self.center_sample_radius)[None, :, None]            # (1, P, 1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            cx1, cy1 = torch.maximum(cx - radius, x1), torch.maximum(cy - radius, y1)
            cx2, cy2 = torch.minimum(cx + radius, x2), torch.minimum(cy + radius, y2)
            center = torch.stack((xs - cx1, ys - cy1, cx2 - xs, cy2 - ys), dim=-1)
            inside = center.min(dim=-1).values > 0
        else:
            inside = bbox_targets.min(dim=-1).values > 0
        max_dist = bbox_targets.max(dim=-1).values
        in_range = (max_dist >= ranges[None, :, 0, None]) & (max_dist <= ranges[None, :, 1, None])

        areas = ((x2 - x1) * (y2 - y1)).expand(-1, num_points, -1)                   # (B, P, G)
        candidate = inside & in_range & valid[:, None, :]
        areas = torch.where(candidate, areas, areas.new_full((), INF))
        min_area, min_idx = areas.min(dim=-1)                                        # (B, P)
        labels = gt_labels.gather(1, min_idx)
        labels = torch.where(min_area == INF, labels.new_full((), self.num_classes), labels)
        targets = bbox_targets.gather(2, min_idx[..., None, None].expand(-1, -1, 1, 4)).squeeze(2)
        if self.norm_on_bbox:
            targets = targets / strides[None, :, None]
        return labels, targets

    @staticmethod
    def centerness_target(pos_bbox_targets: Tensor) -> Tensor:
        """Centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of (N, 4) positive distances
        (all > 0) -> (N,) in (0, 1]."""
        lr = pos_bbox_targets[:, [0, 2]]
        tb = pos_bbox_targets[:, [1, 3]]
        if lr.numel() == 0:
            return lr[:, 0]
        ratio = (lr.min(dim=-1).values / lr.max(dim=-1).values) * (tb.min(dim=-1).values / tb.max(dim=-1).values)
        return torch.sqrt(ratio)

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                        score_factors: Sequence[Tensor] | None = None, batch_img_metas: Any = None,
                        cfg: Any = None, rescale: bool = False, with_nms: bool = True) -> list:
        """See :meth:`BaseDenseHead.predict_by_feat`; ``score_factors`` are the centerness logits (their sigmoid
        multiplies the class scores after the score threshold, as in MMDetection)."""
        return super().predict_by_feat(cls_scores, bbox_preds, score_factors, batch_img_metas, cfg, rescale,
                                       with_nms)
