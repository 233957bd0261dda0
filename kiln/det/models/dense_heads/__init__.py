"""Dense (one-stage) heads, registered in ``kiln.registry.MODELS``."""
from .anchor_free_head import AnchorFreeHead
from .anchor_head import AnchorHead
from .atss_head import ATSSHead
from .base_dense_head import BaseDenseHead
from .fcos_head import FCOSHead
from .retina_head import RetinaHead
from .rpn_head import RPNHead

__all__ = ['ATSSHead', 'AnchorFreeHead', 'AnchorHead', 'BaseDenseHead', 'FCOSHead', 'RetinaHead', 'RPNHead']
