"""Detection hooks (registered in ``kiln.registry.HOOKS``)."""
from .data_check_hook import DataCheckHook
from .analysis_hook import DetAnalysisHook
from .visualization_hook import DetVisualizationHook

__all__ = ['DataCheckHook', 'DetAnalysisHook', 'DetVisualizationHook']
