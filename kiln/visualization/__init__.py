"""Visualizer and its backends (each tracker library is imported only when its backend first writes)."""
from .backends import AimVisBackend, ClearMLVisBackend, DVCLiveVisBackend, MLflowVisBackend, WandbVisBackend
from .color import to_rgb
from .vis_backend import BaseVisBackend, LocalVisBackend, TensorboardVisBackend
from .visualizer import Visualizer

__all__ = ['Visualizer', 'BaseVisBackend', 'LocalVisBackend', 'TensorboardVisBackend', 'MLflowVisBackend',
           'WandbVisBackend', 'ClearMLVisBackend', 'DVCLiveVisBackend', 'AimVisBackend', 'to_rgb']
