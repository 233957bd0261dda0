"""Detection engine parts: hooks."""
from .hooks import DetAnalysisHook, DetVisualizationHook

__all__ = ['DetAnalysisHook', 'DetVisualizationHook']
