"""Detection hooks (registered in ``kiln.registry.HOOKS``)."""
from .visualization_hook import DetVisualizationHook

__all__ = ['DetVisualizationHook']
