"""ATSS detector (Zhang et al., CVPR 2020)."""
from __future__ import annotations

from kiln.registry import MODELS

from .single_stage import SingleStageDetector


@MODELS.register_module()
class ATSS(SingleStageDetector):
    """ATSS: ``SingleStageDetector`` with an ``ATSSHead`` (same constructor arguments)."""
