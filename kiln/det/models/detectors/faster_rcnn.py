"""Faster R-CNN (Ren et al., "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
NeurIPS 2015)."""
from __future__ import annotations

from kiln.registry import MODELS

from .two_stage import TwoStageDetector


@MODELS.register_module()
class FasterRCNN(TwoStageDetector):
    """Faster R-CNN: :class:`TwoStageDetector` with an ``RPNHead`` and a ``StandardRoIHead`` (same constructor
    arguments; MMDetection's ``faster-rcnn_r50_fpn_1x_coco`` model config builds unchanged)."""
