"""Region Proposal Network head (Ren et al., "Faster R-CNN", NeurIPS 2015); MMDetection 3.x ``RPNHead``."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kiln.registry import MODELS
from kiln.structures import InstanceData

from ..layers import ConvModule
from ..layers.bbox_nms import batched_nms
from ..utils import select_single_mlvl, unpack_gt_instances
from .anchor_head import AnchorHead
from .base_dense_head import _cfg_get


@MODELS.register_module()
class RPNHead(AnchorHead):
    """Objectness + box-delta head over anchors; produces the proposals of a two-stage detector.

    Layers (MMDetection state-dict names): ``rpn_conv`` (3x3, ``in_channels -> feat_channels``, ReLU; with
    ``num_convs > 1`` an ``nn.Sequential`` of ``ConvModule``), ``rpn_cls`` (1x1, ``A`` objectness logits per
    cell), ``rpn_reg`` (1x1, ``4 A`` deltas per cell).

    Args:
        in_channels: neck channels.
        num_classes: must be 1 (objectness).
        num_convs: number of 3x3 convs before the predictors.
        init_cfg: default ``Normal(std=0.01)`` on convs.
        **kwargs: :class:`AnchorHead` arguments (``feat_channels``, ``anchor_generator``, ``bbox_coder``,
            ``loss_cls`` (sigmoid ``CrossEntropyLoss``), ``loss_bbox`` (e.g. ``L1Loss``), ``train_cfg``,
            ``test_cfg``).

    ``train_cfg`` (``model.train_cfg.rpn``): ``assigner`` (``MaxIoUAssigner``), ``sampler`` (``RandomSampler``
    or ``PseudoSampler``), ``allowed_border`` (< 0: keep every anchor; >= 0: only anchors inside the image
    extended by that many pixels take part), ``pos_weight`` (<= 0: 1.0).

    Test / proposal config (``model.test_cfg.rpn``, ``model.train_cfg.rpn_proposal``): ``nms_pre`` (per level,
    keep the best this many anchors by objectness), ``nms`` (per-level NMS, ``dict(type='nms',
    iou_threshold=0.7)``), ``max_per_img``, ``min_bbox_size`` (drop proposals with width or height <= it; < 0
    disables), optional ``score_thr``.

    Outputs per level: cls_score (N, A, H, W) objectness logits, bbox_pred (N, 4 A, H, W) deltas.

    Raises:
        ValueError: ``num_classes != 1``; ``train_cfg`` without an assigner.
    """

    def __init__(self, in_channels: int, num_classes: int = 1,
                 init_cfg: Any = dict(type='Normal', layer='Conv2d', std=0.01), num_convs: int = 1,
                 train_cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if num_classes != 1:
            raise ValueError(f'RPNHead: num_classes must be 1 (objectness), got {num_classes}')
        self.num_convs = num_convs
        # AnchorHead only knows the PseudoSampler; build the assigner and sampler here
        super().__init__(num_classes, in_channels, init_cfg=init_cfg, train_cfg=None, **kwargs)
        self.train_cfg = train_cfg
        if train_cfg is not None:
            if _cfg_get(train_cfg, 'assigner') is None:
                raise ValueError('RPNHead: train_cfg (model.train_cfg.rpn) needs an "assigner"')
            self.assigner = MODELS.build(_cfg_get(train_cfg, 'assigner'))
            self.sampler = MODELS.build(_cfg_get(train_cfg, 'sampler', dict(type='PseudoSampler')))

    def _init_layers(self) -> None:
        if self.num_convs > 1:
            self.rpn_conv = nn.Sequential(*[
                ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, padding=1,
                           inplace=False) for i in range(self.num_convs)])
        else:
            self.rpn_conv = nn.Conv2d(self.in_channels, self.feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.bbox_coder.encode_size, 1)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One level (N, in_channels, H, W) -> (objectness (N, A, H, W), deltas (N, 4 A, H, W))."""
        x = F.relu(self.rpn_conv(x))
        return self.rpn_cls(x), self.rpn_reg(x)

    # ------------------------------------------------------------------ training
    def loss_and_predict(self, x: Sequence[Tensor], batch_data_samples: Sequence[Any],
                         proposal_cfg: Any = None) -> tuple[dict[str, list[Tensor]], list[InstanceData]]:
        """Losses (see :meth:`loss_by_feat`) and proposals (see :meth:`predict_by_feat`, with ``proposal_cfg``)
        from one forward pass. The proposals are detached."""
        outs = self(x)
        gts, ignores, metas = unpack_gt_instances(batch_data_samples)
        losses = self.loss_by_feat(*outs, gts, metas, ignores)
        proposals = self.predict_by_feat(*outs, batch_img_metas=metas, cfg=proposal_cfg)
        return losses, proposals

    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                     batch_gt_instances: Sequence[Any], batch_img_metas: Sequence[Mapping[str, Any]],
                     batch_gt_instances_ignore: Sequence[Any] | None = None) -> dict[str, list[Tensor]]:
        """RPN losses.

        Args:
            cls_scores, bbox_preds: per level, (N, A, H, W) and (N, 4 A, H, W).
            batch_gt_instances: per image, ``bboxes`` float (G, 4) xyxy pixels of the input image; ``labels`` are
                ignored (every box is an object, class 0).
            batch_img_metas: per image, ``img_shape`` and ``pad_shape`` (h, w).
            batch_gt_instances_ignore: per image, ``bboxes`` to ignore (used by the assigner), or None.

        Returns:
            ``dict(loss_rpn_cls=[...], loss_rpn_bbox=[...])``: one 0-dim tensor per level (sigmoid
            cross-entropy and box loss summed over the level's sampled anchors of all images, divided by the
            batch's ``avg_factor``: sampled positives + negatives with ``RandomSampler``, positives with
            ``PseudoSampler``), as MMDetection returns them.

        Raises:
            RuntimeError: no ``train_cfg``.
            ValueError: an image has no anchor inside it.
        """
        if self.assigner is None:
            raise RuntimeError('RPNHead.loss needs train_cfg (model.train_cfg.rpn) with an assigner')
        num_imgs = cls_scores[0].size(0)
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        device, dtype = cls_scores[0].device, cls_scores[0].dtype
        anchors_lvl = self.prior_generator.grid_priors(featmap_sizes, dtype=dtype, device=device)
        num_level = [a.size(0) for a in anchors_lvl]
        anchors = torch.cat(anchors_lvl)
        ignores = batch_gt_instances_ignore or [None] * num_imgs
        targets = [self._rpn_targets_single(anchors, featmap_sizes, gt, meta, ign)
                   for gt, meta, ign in zip(batch_gt_instances, batch_img_metas, ignores)]
        avg_factor = sum(t[4] for t in targets)
        # (N, P, ...) -> per level (N * P_l, ...), image-major like the reshaped head outputs
        per_level = []
        for j in range(4):
            stacked = torch.stack([t[j] for t in targets])
            per_level.append([s.reshape(-1, *s.shape[2:]) for s in stacked.split(num_level, dim=1)])
        labels, label_w, bbox_t, bbox_w = per_level
        losses_cls, losses_bbox = [], []
        for lvl, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            cls_score = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
            losses_cls.append(self.loss_cls(cls_score, labels[lvl], label_w[lvl], avg_factor=avg_factor))
            bbox_pred = bbox_pred.permute(0, 2, 3, 1).reshape(-1, self.bbox_coder.encode_size)
            if self.reg_decoded_bbox:
                bbox_pred = self.bbox_coder.decode(anchors_lvl[lvl].repeat(num_imgs, 1), bbox_pred)
            losses_bbox.append(self.loss_bbox(bbox_pred, bbox_t[lvl], bbox_w[lvl], avg_factor=avg_factor))
        return dict(loss_rpn_cls=losses_cls, loss_rpn_bbox=losses_bbox)

    def _rpn_targets_single(self, anchors: Tensor, featmap_sizes: Sequence[Any], gt_instances: Any,
                            img_meta: Mapping[str, Any], gt_instances_ignore: Any) -> tuple:
        """Targets of one image over all anchors (P, 4): labels int64 (P,) (0 = object, 1 = background),
        label weights (P,), bbox targets (P, 4), bbox weights (P, 4) and the sampler's ``avg_factor`` (int)."""
        device = anchors.device
        pad_shape = img_meta.get('pad_shape', img_meta.get('batch_input_shape'))
        if pad_shape is None:
            raise ValueError(f'image metainfo {sorted(img_meta)} has neither pad_shape nor batch_input_shape')
        inside = torch.cat(self.prior_generator.valid_flags(featmap_sizes, pad_shape[:2], device))
        border = _cfg_get(self.train_cfg, 'allowed_border', -1)
        if border is not None and border >= 0:
            h, w = img_meta['img_shape'][:2]
            inside = inside & (anchors[:, 0] >= -border) & (anchors[:, 1] >= -border) & \
                (anchors[:, 2] < w + border) & (anchors[:, 3] < h + border)
        if not inside.any():
            raise ValueError(f'image {img_meta.get("img_path")!r}: no anchor lies inside the image '
                             f'(img_shape={img_meta.get("img_shape")}, allowed_border={border})')
        inside_anchors = anchors[inside]
        # every ground-truth box is an object: class 0 (MMDetection zeroes the labels of the RPN's data samples)
        gt_bboxes = gt_instances.bboxes.to(device=device, dtype=anchors.dtype)
        gt = InstanceData(bboxes=gt_bboxes, labels=gt_bboxes.new_zeros(gt_bboxes.size(0), dtype=torch.long))
        pred = InstanceData(priors=inside_anchors)
        assign = self.assigner.assign(pred, gt, gt_instances_ignore)
        sampling = self.sampler.sample(assign, pred, gt)
        num = inside_anchors.size(0)
        dim = self.bbox_coder.encode_size
        bbox_targets = inside_anchors.new_zeros(num, dim)
        bbox_weights = inside_anchors.new_zeros(num, dim)
        labels = inside_anchors.new_full((num,), self.num_classes, dtype=torch.long)
        label_weights = inside_anchors.new_zeros(num, dtype=torch.float)
        pos_inds, neg_inds = sampling.pos_inds, sampling.neg_inds
        if len(pos_inds) > 0:
            if self.reg_decoded_bbox:
                pos_targets = sampling.pos_gt_bboxes
            else:
                pos_targets = self.bbox_coder.encode(sampling.pos_priors, sampling.pos_gt_bboxes)
            bbox_targets[pos_inds, :] = pos_targets.to(bbox_targets.dtype)
            bbox_weights[pos_inds, :] = 1.0
            labels[pos_inds] = sampling.pos_gt_labels
            pos_weight = _cfg_get(self.train_cfg, 'pos_weight', -1)
            label_weights[pos_inds] = 1.0 if pos_weight is None or pos_weight <= 0 else float(pos_weight)
        if len(neg_inds) > 0:
            label_weights[neg_inds] = 1.0
        total = anchors.size(0)

        def unmap(data: Tensor, fill: float) -> Tensor:
            out = data.new_full((total, *data.shape[1:]), fill)
            out[inside] = data
            return out

        return (unmap(labels, self.num_classes), unmap(label_weights, 0), unmap(bbox_targets, 0),
                unmap(bbox_weights, 0), sampling.avg_factor)

    # ------------------------------------------------------------------ proposals
    def predict_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor],
                        score_factors: Sequence[Tensor] | None = None,
                        batch_img_metas: Sequence[Mapping[str, Any]] | None = None, cfg: Any = None,
                        rescale: bool = False, with_nms: bool = True) -> list[InstanceData]:
        """Proposals of every image.

        Per level the best ``nms_pre`` anchors by objectness (sigmoid) are decoded (clipped to ``img_shape``),
        boxes with width or height <= ``min_bbox_size`` are dropped, NMS runs per level (MMCV ``batched_nms``
        semantics with the level as group id) and the best ``max_per_img`` are kept.

        Returns:
            One ``InstanceData`` per image with ``bboxes`` float (K, 4) xyxy pixels of the input image (of the
            original image with ``rescale``), ``scores`` float (K,) objectness probabilities (decreasing) and
            ``labels`` int64 (K,) zeros.

        Raises:
            ValueError: no metainfo, or cls/bbox levels that disagree.
            NotImplementedError: ``with_nms=False`` (MMDetection's RPN requires NMS too).
        """
        if not with_nms:
            raise NotImplementedError('RPNHead.predict_by_feat needs with_nms=True')
        if len(cls_scores) != len(bbox_preds):
            raise ValueError(f'{len(cls_scores)} cls_scores levels vs {len(bbox_preds)} bbox_preds levels')
        if batch_img_metas is None:
            raise ValueError('RPNHead.predict_by_feat needs batch_img_metas (img_shape per image)')
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError('RPNHead: no proposal config (test_cfg.rpn / train_cfg.rpn_proposal)')
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        priors = self.prior_generator.grid_priors(featmap_sizes, dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        return [self._proposals_single(select_single_mlvl(cls_scores, i), select_single_mlvl(bbox_preds, i), priors,
                                       meta, cfg, rescale) for i, meta in enumerate(batch_img_metas)]

    def _proposals_single(self, cls_score_list: Sequence[Tensor], bbox_pred_list: Sequence[Tensor],
                          mlvl_priors: Sequence[Tensor], img_meta: Mapping[str, Any], cfg: Any,
                          rescale: bool) -> InstanceData:
        if 'img_shape' not in img_meta:
            raise ValueError(f'image metainfo {sorted(img_meta)} has no img_shape (h, w)')
        nms_pre = _cfg_get(cfg, 'nms_pre', -1)
        dim = self.bbox_coder.encode_size
        preds, kept_priors, scores, level_ids = [], [], [], []
        for lvl, (cls_score, bbox_pred, priors) in enumerate(zip(cls_score_list, bbox_pred_list, mlvl_priors)):
            if cls_score.shape[-2:] != bbox_pred.shape[-2:]:
                raise ValueError(f'level {lvl}: cls_score {tuple(cls_score.shape)} and bbox_pred '
                                 f'{tuple(bbox_pred.shape)} have different spatial sizes')
            bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, dim)
            score = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels).sigmoid().reshape(-1)
            if 0 < nms_pre < score.shape[0]:
                # the best nms_pre in decreasing order: a partial top-k instead of MMDetection's full sort (same
                # boxes and order, up to the order of exactly tied scores)
                score, order = score.topk(nms_pre, sorted=True)
                bbox_pred, priors = bbox_pred[order], priors[order]
            preds.append(bbox_pred)
            kept_priors.append(priors)
            scores.append(score)
            level_ids.append(score.new_full((score.size(0),), lvl, dtype=torch.long))
        results = InstanceData()
        results.bboxes = self.bbox_coder.decode(torch.cat(kept_priors), torch.cat(preds),
                                                max_shape=img_meta['img_shape'])
        results.scores = torch.cat(scores)
        results.level_ids = torch.cat(level_ids)
        if rescale:
            if img_meta.get('scale_factor') is None:
                raise ValueError(f'rescale=True needs scale_factor in the image metainfo ({sorted(img_meta)})')
            sw, sh = img_meta['scale_factor'][:2]
            results.bboxes = results.bboxes * results.bboxes.new_tensor([1 / sw, 1 / sh, 1 / sw, 1 / sh])
        min_size = _cfg_get(cfg, 'min_bbox_size', -1)
        if min_size is not None and min_size >= 0:
            wh = results.bboxes[:, 2:] - results.bboxes[:, :2]
            valid = (wh[:, 0] > min_size) & (wh[:, 1] > min_size)
            if not bool(valid.all()):
                results = results[valid]
        if results.bboxes.numel() > 0:
            dets, keep = batched_nms(results.bboxes, results.scores, results.level_ids, _cfg_get(cfg, 'nms'))
            results = results[keep]
            results.scores = dets[:, -1]
            max_per_img = _cfg_get(cfg, 'max_per_img', -1)
            if max_per_img is not None and max_per_img > 0:
                results = results[:max_per_img]
            results.labels = results.scores.new_zeros(len(results), dtype=torch.long)
            del results.level_ids
        else:
            results = InstanceData(bboxes=results.bboxes.new_zeros((0, 4)), scores=results.scores.new_zeros(0),
                                   labels=results.scores.new_zeros(0, dtype=torch.long))
        score_thr = _cfg_get(cfg, 'score_thr', -1)
        if score_thr is not None and score_thr > 0:
            results = results[results.scores > score_thr]
        return results
