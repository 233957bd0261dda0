"""High-level inference APIs: :class:`DetInferencer` (MMDetection) and :class:`DetPredictor` (Detectron2)."""
from .inferencer import DetInferencer, DetPredictor, list_images, pred_to_dict

__all__ = ['DetInferencer', 'DetPredictor', 'list_images', 'pred_to_dict']
