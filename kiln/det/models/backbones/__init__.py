"""Backbones (registered in ``kiln.registry.MODELS``)."""
from .resnet import ResNet

__all__ = ['ResNet']
