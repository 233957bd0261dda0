"""Detection data structures."""
from .det_data_sample import DetDataSample, OptSampleList, SampleList
from .mask import BaseInstanceMasks, BitmapMasks, PolygonMasks

__all__ = ['DetDataSample', 'SampleList', 'OptSampleList', 'BaseInstanceMasks', 'BitmapMasks', 'PolygonMasks']
