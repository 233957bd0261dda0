"""RetinaNet detector (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017)."""
from __future__ import annotations

from kiln.registry import MODELS

from .single_stage import SingleStageDetector


@MODELS.register_module()
class RetinaNet(SingleStageDetector):
    """RetinaNet: ``SingleStageDetector`` with a ``RetinaHead`` (same constructor arguments)."""
