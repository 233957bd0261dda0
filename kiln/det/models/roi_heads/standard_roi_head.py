"""``StandardRoIHead``: box (and optional mask) branch of Faster / Mask R-CNN; MMDetection 3.x semantics."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from kiln.registry import MODELS
from kiln.structures import InstanceData

from ..layers.bbox_nms import _cfg_get
from ..utils import unpack_gt_instances
from .base_roi_head import BaseRoIHead
from .roi_utils import bbox2roi


@MODELS.register_module()
class StandardRoIHead(BaseRoIHead):
    """Pool RoI features with ``bbox_roi_extractor`` (``SingleRoIExtractor``) and classify / refine them with
    ``bbox_head`` (e.g. ``Shared2FCBBoxHead``); with ``mask_head`` also predict masks (Mask R-CNN).

    Training (:meth:`loss`): per image the proposals are assigned to ground truth (``train_cfg.assigner``) and
    sampled (``train_cfg.sampler``, e.g. 512 RoIs, 25 % positive, ground truths added as proposals); returns
    ``loss_cls``, ``acc``, ``loss_bbox`` (and ``loss_mask``).

    Inference (:meth:`predict`): RoI outputs -> softmax scores, per-class decoded boxes, ``score_thr``, per-class
    NMS, ``max_per_img`` (``test_cfg``); see ``BBoxHead.predict_by_feat``.

    Mask branch interface (MMDetection 3.x): ``mask_head(feats) -> mask_preds``;
    ``mask_head.loss_and_target(mask_preds=, sampling_results=, batch_gt_instances=, rcnn_train_cfg=)`` returns a
    dict with ``loss_mask`` (a dict of losses); ``mask_head.predict_by_feat(mask_preds=, results_list=,
    batch_img_metas=, rcnn_test_cfg=, rescale=)`` returns the results with ``masks``.

    Args: see :class:`BaseRoIHead`.

    Raises:
        ValueError: ``train_cfg`` without ``assigner`` / ``sampler``.
    """

    def init_assigner_sampler(self) -> None:
        self.bbox_assigner = None
        self.bbox_sampler = None
        if self.train_cfg is not None:
            for key in ('assigner', 'sampler'):
                if _cfg_get(self.train_cfg, key) is None:
                    raise ValueError(f'{type(self).__name__}: train_cfg (model.train_cfg.rcnn) needs {key!r}')
            self.bbox_assigner = MODELS.build(_cfg_get(self.train_cfg, 'assigner'))
            self.bbox_sampler = MODELS.build(_cfg_get(self.train_cfg, 'sampler'), default_args=dict(context=self))

    def init_bbox_head(self, bbox_roi_extractor: Mapping[str, Any], bbox_head: Mapping[str, Any]) -> None:
        if bbox_roi_extractor is None:
            raise ValueError(f'{type(self).__name__}: bbox_head needs a bbox_roi_extractor')
        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_head = MODELS.build(bbox_head)

    def init_mask_head(self, mask_roi_extractor: Mapping[str, Any] | None, mask_head: Mapping[str, Any]) -> None:
        if mask_roi_extractor is not None:
            self.mask_roi_extractor = MODELS.build(mask_roi_extractor)
            self.share_roi_extractor = False
        else:
            self.share_roi_extractor = True
            self.mask_roi_extractor = self.bbox_roi_extractor
        self.mask_head = MODELS.build(mask_head)

    # ------------------------------------------------------------------ forward pieces
    def forward(self, x: tuple[Tensor, ...], rpn_results_list: Sequence[InstanceData],
                batch_data_samples: Sequence[Any] | None = None) -> tuple:
        """Raw outputs on all proposals (``mode='tensor'``): ``(cls_score (R, C + 1), bbox_pred (R, 4 C))`` plus
        ``mask_preds`` of the first 100 RoIs with a mask branch."""
        rois = bbox2roi([res.bboxes for res in rpn_results_list])
        results: tuple = ()
        if self.with_bbox:
            out = self._bbox_forward(x, rois)
            results = results + (out['cls_score'], out['bbox_pred'])
        if self.with_mask:
            results = results + (self._mask_forward(x, rois[:100])['mask_preds'],)
        return results

    def _bbox_forward(self, x: tuple[Tensor, ...], rois: Tensor) -> dict[str, Tensor]:
        """RoIs (R, 5) -> dict(cls_score, bbox_pred, bbox_feats (R, C, 7, 7))."""
        bbox_feats = self.bbox_roi_extractor(x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        cls_score, bbox_pred = self.bbox_head(bbox_feats)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)

    def _mask_forward(self, x: tuple[Tensor, ...], rois: Tensor | None = None, pos_inds: Tensor | None = None,
                      bbox_feats: Tensor | None = None) -> dict[str, Tensor]:
        """Mask predictions from RoIs (R, 5), or (shared extractor) from the box features of ``pos_inds``."""
        if (rois is None) == (pos_inds is None or bbox_feats is None):
            raise ValueError('_mask_forward needs either rois, or pos_inds together with bbox_feats')
        if rois is not None:
            mask_feats = self.mask_roi_extractor(x[:self.mask_roi_extractor.num_inputs], rois)
            if self.with_shared_head:
                mask_feats = self.shared_head(mask_feats)
        else:
            mask_feats = bbox_feats[pos_inds]
        return dict(mask_preds=self.mask_head(mask_feats), mask_feats=mask_feats)

    # ------------------------------------------------------------------ training
    def loss(self, x: tuple[Tensor, ...], rpn_results_list: Sequence[InstanceData],
             batch_data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """Second-stage losses.

        Args:
            x: neck features, per level (N, C, H_l, W_l).
            rpn_results_list: per image, proposals with ``bboxes`` float (R_i, 4) xyxy input-image pixels
                (detached).
            batch_data_samples: with ``gt_instances`` (``bboxes``, ``labels``; ``masks`` for the mask branch).

        Returns:
            ``loss_cls``, ``acc``, ``loss_bbox`` (+ ``loss_mask``).

        Raises:
            RuntimeError: no ``train_cfg``. ValueError: proposals and samples differ in number.
        """
        if self.bbox_assigner is None:
            raise RuntimeError(f'{type(self).__name__}.loss needs train_cfg (model.train_cfg.rcnn)')
        if len(rpn_results_list) != len(batch_data_samples):
            raise ValueError(f'{len(rpn_results_list)} proposal lists for {len(batch_data_samples)} data samples')
        gts, ignores, _ = unpack_gt_instances(batch_data_samples)
        sampling_results = []
        for i, proposals in enumerate(rpn_results_list):
            gt = gts[i]
            device = proposals.bboxes.device
            gt_i = InstanceData(bboxes=gt.bboxes.to(device=device, dtype=proposals.bboxes.dtype),
                                labels=gt.labels.to(device))
            pred = InstanceData(priors=proposals.bboxes)
            assign = self.bbox_assigner.assign(pred, gt_i, ignores[i])
            sampling_results.append(self.bbox_sampler.sample(assign, pred, gt_i,
                                                             feats=[lvl[i][None] for lvl in x]))
        losses: dict[str, Tensor] = {}
        bbox_results: dict[str, Any] = {}
        if self.with_bbox:
            bbox_results = self.bbox_loss(x, sampling_results)
            losses.update(bbox_results['loss_bbox'])
        if self.with_mask:
            mask_results = self.mask_loss(x, sampling_results, bbox_results.get('bbox_feats'), gts)
            losses.update(mask_results['loss_mask'])
        return losses

    def bbox_loss(self, x: tuple[Tensor, ...], sampling_results: Sequence[Any]) -> dict[str, Any]:
        """Box-branch forward on the sampled RoIs and its losses (``loss_bbox`` entry: dict of losses)."""
        rois = bbox2roi([res.priors for res in sampling_results])
        results = self._bbox_forward(x, rois)
        out = self.bbox_head.loss_and_target(cls_score=results['cls_score'], bbox_pred=results['bbox_pred'],
                                             rois=rois, sampling_results=sampling_results,
                                             rcnn_train_cfg=self.train_cfg)
        results.update(loss_bbox=out['loss_bbox'])
        return results

    def mask_loss(self, x: tuple[Tensor, ...], sampling_results: Sequence[Any], bbox_feats: Tensor | None,
                  batch_gt_instances: Sequence[Any]) -> dict[str, Any]:
        """Mask-branch forward on the positive RoIs and the mask head's ``loss_and_target``."""
        if not self.share_roi_extractor:
            results = self._mask_forward(x, bbox2roi([res.pos_priors for res in sampling_results]))
        else:
            if bbox_feats is None:
                raise RuntimeError('a shared RoI extractor needs the box branch features')
            device = bbox_feats.device
            flags = []
            for res in sampling_results:
                flags.append(torch.ones(res.pos_priors.shape[0], device=device, dtype=torch.bool))
                flags.append(torch.zeros(res.neg_priors.shape[0], device=device, dtype=torch.bool))
            results = self._mask_forward(x, pos_inds=torch.cat(flags), bbox_feats=bbox_feats)
        out = self.mask_head.loss_and_target(mask_preds=results['mask_preds'], sampling_results=sampling_results,
                                             batch_gt_instances=batch_gt_instances, rcnn_train_cfg=self.train_cfg)
        results.update(loss_mask=out['loss_mask'])
        return results

    # ------------------------------------------------------------------ inference
    def predict_bbox(self, x: tuple[Tensor, ...], batch_img_metas: Sequence[Mapping[str, Any]],
                     rpn_results_list: Sequence[InstanceData], rcnn_test_cfg: Any,
                     rescale: bool = False) -> list[InstanceData]:
        """Box-branch detections (see ``BBoxHead.predict_by_feat``)."""
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            return [self.bbox_head._empty_result(rois) for _ in batch_img_metas]
        out = self._bbox_forward(x, rois)
        counts = tuple(len(p) for p in proposals)
        cls_scores = out['cls_score'].split(counts, 0)
        bbox_preds = (out['bbox_pred'].split(counts, 0) if out['bbox_pred'] is not None
                      else (None,) * len(proposals))
        return self.bbox_head.predict_by_feat(rois=rois.split(counts, 0), cls_scores=cls_scores,
                                              bbox_preds=bbox_preds, batch_img_metas=batch_img_metas,
                                              rcnn_test_cfg=rcnn_test_cfg, rescale=rescale)

    def predict_mask(self, x: tuple[Tensor, ...], batch_img_metas: Sequence[Mapping[str, Any]],
                     results_list: Sequence[InstanceData], rescale: bool = False) -> list[InstanceData]:
        """Masks for the box detections (boxes in input-image pixels); the mask head's ``predict_by_feat`` adds
        ``masks`` and, with ``rescale``, maps boxes and masks to the original image."""
        mask_rois = bbox2roi([res.bboxes for res in results_list])
        if mask_rois.shape[0] == 0:
            for res, meta in zip(results_list, batch_img_metas):
                h, w = (meta['ori_shape'] if rescale else meta['img_shape'])[:2]
                res.masks = torch.zeros((0, int(h), int(w)), dtype=torch.bool, device=mask_rois.device)
            return list(results_list)
        mask_preds = self._mask_forward(x, mask_rois)['mask_preds']
        mask_preds = mask_preds.split([len(res) for res in results_list], 0)
        return self.mask_head.predict_by_feat(mask_preds=mask_preds, results_list=results_list,
                                              batch_img_metas=batch_img_metas, rcnn_test_cfg=self.test_cfg,
                                              rescale=rescale)
