"""Visualizer and its backends (tensorboard / matplotlib are imported only when used)."""
from .color import to_rgb
from .vis_backend import BaseVisBackend, LocalVisBackend, TensorboardVisBackend
from .visualizer import Visualizer

__all__ = ['Visualizer', 'BaseVisBackend', 'LocalVisBackend', 'TensorboardVisBackend', 'to_rgb']
