"""Detection metrics (registered in ``kiln.registry.METRICS``)."""
from .coco_metric import CocoMetric
from .voc_metric import VOCMetric

__all__ = ['CocoMetric', 'VOCMetric']
