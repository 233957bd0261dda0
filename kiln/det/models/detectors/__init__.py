"""Detectors (registered in ``kiln.registry.MODELS``)."""
from .base import BaseDetector
from .fcos import FCOS
from .retinanet import RetinaNet
from .single_stage import SingleStageDetector

__all__ = ['BaseDetector', 'FCOS', 'RetinaNet', 'SingleStageDetector']
