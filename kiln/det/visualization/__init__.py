"""Detection visualization: ``DetLocalVisualizer`` (registered in ``kiln.registry.VISUALIZERS``) and palettes."""
from .local_visualizer import DetLocalVisualizer
from .palette import get_palette, make_palette

__all__ = ['DetLocalVisualizer', 'get_palette', 'make_palette']
