"""Data containers passed between datasets, models and metrics."""
from .base_data_element import BaseDataElement
from .instance_data import InstanceData

__all__ = ['BaseDataElement', 'InstanceData']
