"""Mask R-CNN detector (He et al., "Mask R-CNN", ICCV 2017); MMDetection 3.x ``MaskRCNN``."""
from __future__ import annotations

from kiln.registry import MODELS

from .two_stage import TwoStageDetector


@MODELS.register_module()
class MaskRCNN(TwoStageDetector):
    """Mask R-CNN: a :class:`TwoStageDetector` whose ``roi_head`` (``StandardRoIHead``) also has a
    ``mask_roi_extractor`` and a ``mask_head`` (``FCNMaskHead``).

    Same constructor arguments as :class:`TwoStageDetector` (``backbone``, ``neck``, ``rpn_head``, ``roi_head``,
    ``train_cfg``, ``test_cfg``, ``data_preprocessor``, ``init_cfg``); ``train_cfg.rcnn.mask_size`` (e.g. 28)
    sets the mask target size and ``test_cfg.rcnn.mask_thr_binary`` (e.g. 0.5) the mask threshold.

    Predictions (``mode='predict'``): ``pred_instances.bboxes`` float32 (K, 4) xyxy pixels, ``scores`` (K,),
    ``labels`` int64 (K,), ``scores_per_class`` (K, C) and ``masks`` bool (K, H, W), all in the original image
    (``rescale=True``). Training needs ``gt_instances.masks`` (``BitmapMasks``/``PolygonMasks``) beside the
    boxes and labels; the losses add ``loss_mask`` to Faster R-CNN's.
    """
