"""Box coders, registered in ``kiln.registry.MODELS``."""
from .delta_xywh_bbox_coder import DeltaXYWHBBoxCoder
from .distance_point_bbox_coder import DistancePointBBoxCoder, clip_boxes

__all__ = ['DeltaXYWHBBoxCoder', 'DistancePointBBoxCoder', 'clip_boxes']
