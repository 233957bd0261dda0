"""RoI heads (second stage of two-stage detectors), registered in ``kiln.registry.MODELS``."""
from .base_roi_head import BaseRoIHead
from .bbox_heads import BBoxHead, ConvFCBBoxHead, Shared2FCBBoxHead, Shared4Conv1FCBBoxHead
from .mask_heads import FCNMaskHead
from .roi_extractors import BaseRoIExtractor, SingleRoIExtractor
from .roi_utils import bbox2roi, roi2bbox
from .standard_roi_head import StandardRoIHead

__all__ = ['BaseRoIExtractor', 'BaseRoIHead', 'BBoxHead', 'ConvFCBBoxHead', 'FCNMaskHead', 'Shared2FCBBoxHead',
           'Shared4Conv1FCBBoxHead', 'SingleRoIExtractor', 'StandardRoIHead', 'bbox2roi', 'roi2bbox']
