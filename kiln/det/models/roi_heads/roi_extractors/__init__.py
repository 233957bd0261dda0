"""RoI feature extractors, registered in ``kiln.registry.MODELS``."""
from .base_roi_extractor import BaseRoIExtractor, RoIAlignLayer
from .single_level_roi_extractor import SingleRoIExtractor

__all__ = ['BaseRoIExtractor', 'RoIAlignLayer', 'SingleRoIExtractor']
