"""Assigners, registered in ``kiln.registry.MODELS``."""
from .assign_result import AssignResult
from .max_iou_assigner import MaxIoUAssigner, box_iof

__all__ = ['AssignResult', 'MaxIoUAssigner', 'box_iof']
