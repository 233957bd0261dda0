"""Detection data preprocessors (registered in ``kiln.registry.MODELS``)."""
from .data_preprocessor import DetDataPreprocessor

__all__ = ['DetDataPreprocessor']
