"""Instance-mask structures (MMDetection 3.x ``mmdet.structures.mask`` names)."""
from .mask_target import mask_target
from .structures import (BaseInstanceMasks, BitmapMasks, PolygonMasks, bitmap_to_polygon, mask2bbox,
                         polygon_to_bitmap)

__all__ = ['BaseInstanceMasks', 'BitmapMasks', 'PolygonMasks', 'bitmap_to_polygon', 'mask2bbox',
           'mask_target', 'polygon_to_bitmap']
