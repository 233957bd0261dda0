"""FCOS detector (Tian et al., ICCV 2019)."""
from __future__ import annotations

from kiln.registry import MODELS

from .single_stage import SingleStageDetector


@MODELS.register_module()
class FCOS(SingleStageDetector):
    """FCOS: ``SingleStageDetector`` with an ``FCOSHead`` (same constructor arguments)."""
