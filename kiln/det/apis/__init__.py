"""High-level inference APIs: :class:`DetInferencer` (MMDetection) and :class:`DetPredictor` (Detectron2)."""
from .inferencer import DetInferencer, DetPredictor, list_images, pred_to_dict
from .zero_config import train_on_folder  # zero-config training (kiln train --data)

__all__ = ['DetInferencer', 'DetPredictor', 'list_images', 'pred_to_dict', 'train_on_folder']
