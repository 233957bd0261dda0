"""Detection hooks (registered in ``kiln.registry.HOOKS``)."""
from .data_check_hook import DataCheckHook
from .analysis_hook import DetAnalysisHook
from .pipeline_switch_hook import PipelineSwitchHook
from .visualization_hook import DetVisualizationHook

__all__ = ['DataCheckHook', 'DetAnalysisHook', 'DetVisualizationHook', 'PipelineSwitchHook']
