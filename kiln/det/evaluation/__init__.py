"""Detection evaluation: metrics registered in ``kiln.registry.METRICS``."""
from .metrics import CocoMetric

__all__ = ['CocoMetric']
