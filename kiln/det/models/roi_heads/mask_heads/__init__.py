"""Mask heads of the RoI heads (registered in ``kiln.registry.MODELS``)."""
from .fcn_mask_head import FCNMaskHead

__all__ = ['FCNMaskHead']
