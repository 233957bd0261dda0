"""Prior generators (points / anchors), registered in ``kiln.registry.MODELS``."""
from .anchor_generator import AnchorGenerator
from .point_generator import MlvlPointGenerator

__all__ = ['AnchorGenerator', 'MlvlPointGenerator']
