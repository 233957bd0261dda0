"""ATSS head (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training
Sample Selection", CVPR 2020); MMDetection ``ATSSHead`` layers, state-dict keys and losses."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from kiln.registry import MODELS
from kiln.structures import InstanceData

from ..layers import ConvModule, Scale
from ..utils import multi_apply, reduce_mean
from .anchor_head import AnchorHead
from .fcos_head import FCOSHead


@MODELS.register_module()
class ATSSHead(AnchorHead):
    """One square anchor per location, ``ATSSAssigner`` targets, GIoU-type box loss weighted by the centerness
    target, and a centerness branch on the regression tower whose sigmoid multiplies the scores at test time.

    Args:
        num_classes, in_channels: see :class:`AnchorHead`.
        pred_kernel_size: kernel of the ``atss_cls`` / ``atss_reg`` / ``atss_centerness`` predictors.
        stacked_convs: depth of the ``cls_convs`` / ``reg_convs`` towers.
        conv_cfg, norm_cfg: tower :class:`ConvModule` configs (default GroupNorm with 32 groups).
        reg_decoded_bbox: compute the box loss on decoded boxes (True for IoU-type losses, as ATSS does).
        loss_centerness: loss of the centerness logits (default sigmoid cross-entropy).
        anchor_generator: default one anchor of size 8 x stride per location, strides 8..128 (the ATSS paper).
        bbox_coder: default ``DeltaXYWHBBoxCoder`` with stds (0.1, 0.1, 0.2, 0.2).
        init_cfg: ``Normal(std=0.01)`` on convs, ``atss_cls`` bias from prior probability 0.01.
        **kwargs: :class:`AnchorHead` arguments (``feat_channels``, ``loss_cls``, ``loss_bbox``, ``train_cfg`` with
            ``assigner=dict(type='ATSSAssigner', topk=9)``, ``test_cfg`` ...).

    Outputs per level: cls_score (N, A * C, H, W) logits, bbox_pred (N, A * 4, H, W) deltas (times the level's
    learnable ``Scale``), centerness (N, A, H, W) logits.

    Differences from MMDetection: anchors whose cell lies in the batch padding stay candidates of the assigner
    (they are excluded from the losses afterwards; MMDetection drops them before assigning) - the same result
    when no image is padded.
    """

    def __init__(self, num_classes: int, in_channels: int, pred_kernel_size: int = 3, stacked_convs: int = 4,
                 conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] | None = dict(type='GN', num_groups=32, requires_grad=True),
                 reg_decoded_bbox: bool = True,
                 loss_centerness: Mapping[str, Any] = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                                           loss_weight=1.0),
                 anchor_generator: Mapping[str, Any] = dict(type='AnchorGenerator', ratios=[1.0],
                                                            octave_base_scale=8, scales_per_octave=1,
                                                            strides=[8, 16, 32, 64, 128]),
                 bbox_coder: Mapping[str, Any] = dict(type='DeltaXYWHBBoxCoder', target_means=(.0, .0, .0, .0),
                                                      target_stds=(0.1, 0.1, 0.2, 0.2)),
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01,
                                      override=dict(type='Normal', name='atss_cls', std=0.01, bias_prob=0.01)),
                 **kwargs: Any) -> None:
        self.pred_kernel_size = pred_kernel_size
        self.stacked_convs = stacked_convs
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        super().__init__(num_classes, in_channels, reg_decoded_bbox=reg_decoded_bbox,
                         anchor_generator=anchor_generator, bbox_coder=bbox_coder, init_cfg=init_cfg, **kwargs)
        self.loss_centerness = MODELS.build(loss_centerness)

    def _init_layers(self) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.cls_convs, self.reg_convs = (nn.ModuleList(
            ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, stride=1,
                       padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg)
            for i in range(self.stacked_convs)) for _ in range(2))
        pad = self.pred_kernel_size // 2
        a = self.num_base_priors
        self.atss_cls = nn.Conv2d(self.feat_channels, a * self.cls_out_channels, self.pred_kernel_size, padding=pad)
        self.atss_reg = nn.Conv2d(self.feat_channels, a * 4, self.pred_kernel_size, padding=pad)
        self.atss_centerness = nn.Conv2d(self.feat_channels, a, self.pred_kernel_size, padding=pad)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.prior_generator.strides)

    def forward(self, x: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per-level (cls_scores, bbox_preds, centernesses); see the class docstring."""
        if len(x) != self.prior_generator.num_levels:
            raise ValueError(f'ATSSHead has {self.prior_generator.num_levels} anchor levels but got {len(x)} '
                             f'feature levels')
        return multi_apply(self.forward_single, x, self.scales)

    def forward_single(self, x: Tensor, scale: Scale) -> tuple[Tensor, Tensor, Tensor]:
        """One level (N, in_channels, H, W) -> (cls_score, bbox_pred, centerness)."""
        cls_feat, reg_feat = self.forward_towers(x)
        return self.atss_cls(cls_feat), scale(self.atss_reg(reg_feat)).float(), self.atss_centerness(reg_feat)

    # ------------------------------------------------------------------ training
    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                     centernesses: Sequence[Tensor], batch_gt_instances: Sequence[Any],
                     batch_img_metas: Sequence[Mapping[str, Any]],
                     batch_gt_instances_ignore: Sequence[Any] | None = None) -> dict[str, Tensor]:
        """``dict(loss_cls, loss_bbox, loss_centerness)`` (0-dim tensors; summed over levels).

        As MMDetection: focal loss over positives and negatives divided by the number of positives; box loss on
        positives weighted by their centerness target and divided by the sum of those targets (at least 1);
        centerness cross-entropy on positives divided by the number of positives.

        Args:
            cls_scores, bbox_preds, centernesses: per level, (N, A * C, H, W), (N, A * 4, H, W), (N, A, H, W).
            batch_gt_instances: per image, ``bboxes`` float (K, 4) xyxy pixels and ``labels`` int64 (K,).
            batch_img_metas: per image, metainfo with ``pad_shape`` (or ``batch_input_shape``).
            batch_gt_instances_ignore: per image, instances whose boxes the assigner ignores, or None.

        Raises:
            RuntimeError: the head has no ``train_cfg`` (assigner).
            ValueError: the levels or the batch sizes of the inputs differ.
        """
        if self.assigner is None:
            raise RuntimeError('ATSSHead.loss needs train_cfg with an assigner')
        if not len(cls_scores) == len(bbox_preds) == len(centernesses):
            raise ValueError('ATSSHead.loss_by_feat: cls_scores, bbox_preds and centernesses differ in levels')
        num_imgs = cls_scores[0].size(0)
        if len(batch_gt_instances) != num_imgs or len(batch_img_metas) != num_imgs:
            raise ValueError(f'ATSSHead: {len(batch_gt_instances)} gt_instances and {len(batch_img_metas)} metas '
                             f'for a batch of {num_imgs} images')
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors([c.shape[-2:] for c in cls_scores], batch_img_metas,
                                                        device=device)
        num_level = [a.size(0) for a in anchor_list[0]]
        anchors = torch.cat(anchor_list[0])  # (P, 4), the same for every image
        ignores = batch_gt_instances_ignore or [None] * num_imgs
        labels, label_w, matched, pos = [], [], [], []
        for gt, flags, ignore in zip(batch_gt_instances, valid_flag_list, ignores):
            inside = torch.cat(flags)
            gt_bboxes = gt.bboxes.to(device=device, dtype=anchors.dtype)
            assign = self.assigner.assign(InstanceData(priors=anchors), num_level,
                                          InstanceData(bboxes=gt_bboxes, labels=gt.labels.to(device)), ignore)
            is_pos = (assign.gt_inds > 0) & inside
            pos.append(is_pos)
            labels.append(torch.where(is_pos, assign.labels, assign.labels.new_full((), self.num_classes)))
            label_w.append((is_pos | ((assign.gt_inds == 0) & inside)).to(anchors.dtype))
            box = gt_bboxes[(assign.gt_inds - 1).clamp(min=0)] if gt_bboxes.numel() else anchors
            matched.append(torch.where(is_pos[:, None], box, anchors))
        pos, matched = torch.cat(pos), torch.cat(matched)  # (N * P,), (N * P, 4)
        flat_anchors = anchors.repeat(num_imgs, 1)

        def flat(outs: Sequence[Tensor], dim: int) -> Tensor:
            return torch.cat([o.permute(0, 2, 3, 1).reshape(num_imgs, -1, dim) for o in outs], 1).reshape(-1, dim)

        num_pos = reduce_mean(pos.sum().to(anchors.dtype)).clamp(min=1.0)
        loss_cls = self.loss_cls(flat(cls_scores, self.cls_out_channels), torch.cat(labels), torch.cat(label_w),
                                 avg_factor=num_pos)

        # negatives: zero deltas and their own anchor as target (finite values, zero weight, no gradient)
        deltas = torch.where(pos[:, None], flat(bbox_preds, 4), flat_anchors.new_zeros(()))
        ctr = (flat_anchors[:, :2] + flat_anchors[:, 2:]) / 2
        ctr_targets = FCOSHead.centerness_target(torch.cat([ctr - matched[:, :2], matched[:, 2:] - ctr], 1)) * pos
        if self.reg_decoded_bbox:
            pred, target = self.bbox_coder.decode(flat_anchors, deltas), matched
        else:
            pred, target = deltas, self.bbox_coder.encode(flat_anchors, matched)
        loss_bbox = self.loss_bbox(pred, target, weight=ctr_targets,
                                   avg_factor=reduce_mean(ctr_targets.sum().detach()).clamp(min=1.0))
        loss_centerness = self.loss_centerness(flat(centernesses, 1).reshape(-1), ctr_targets,
                                               weight=pos.to(anchors.dtype), avg_factor=num_pos)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_centerness)
