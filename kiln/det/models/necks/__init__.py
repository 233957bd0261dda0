"""Necks (registered in ``kiln.registry.MODELS``)."""
from .fpn import FPN

__all__ = ['FPN']
