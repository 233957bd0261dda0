"""Building blocks with MMCV-compatible module names."""
from .conv_module import ConvModule, build_activation_layer, build_conv_layer
from .norm import build_norm_layer, is_norm
from .scale import Scale

__all__ = ['ConvModule', 'build_activation_layer', 'build_conv_layer', 'build_norm_layer', 'is_norm', 'Scale']
