"""Detectors (registered in ``kiln.registry.MODELS``)."""
from .atss import ATSS
from .base import BaseDetector
from .faster_rcnn import FasterRCNN
from .fcos import FCOS
from .mask_rcnn import MaskRCNN
from .retinanet import RetinaNet
from .single_stage import SingleStageDetector
from .two_stage import TwoStageDetector

__all__ = ['ATSS', 'BaseDetector', 'FasterRCNN', 'FCOS', 'MaskRCNN', 'RetinaNet', 'SingleStageDetector',
           'TwoStageDetector']
