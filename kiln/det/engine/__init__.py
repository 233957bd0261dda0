"""Detection engine parts: hooks."""
from .hooks import DetVisualizationHook

__all__ = ['DetVisualizationHook']
