"""Detection metrics (registered in ``kiln.registry.METRICS``)."""
from .coco_metric import CocoMetric

__all__ = ['CocoMetric']
