"""Detection hooks (registered in ``kiln.registry.HOOKS``)."""
from .data_check_hook import DataCheckHook
from .visualization_hook import DetVisualizationHook

__all__ = ['DataCheckHook', 'DetVisualizationHook']
