"""Assigners, registered in ``kiln.registry.MODELS``."""
from .assign_result import AssignResult
from .atss_assigner import ATSSAssigner
from .max_iou_assigner import MaxIoUAssigner, box_iof

__all__ = ['ATSSAssigner', 'AssignResult', 'MaxIoUAssigner', 'box_iof']
