"""Detection losses (registered in ``kiln.registry.MODELS``). All take ``(pred, target, weight=None,
avg_factor=None, reduction_override=None)``."""
from .accuracy import Accuracy, accuracy
from .cross_entropy_loss import CrossEntropyLoss
from .focal_loss import FocalLoss
from .gfocal_loss import DistributionFocalLoss, QualityFocalLoss
from .iou_loss import GIoULoss, IoULoss, aligned_box_iou
from .smooth_l1_loss import L1Loss, SmoothL1Loss
from .utils import reduce_loss, weight_reduce_loss

__all__ = ['Accuracy', 'CrossEntropyLoss', 'DistributionFocalLoss', 'FocalLoss', 'GIoULoss', 'IoULoss', 'L1Loss',
           'QualityFocalLoss', 'SmoothL1Loss', 'accuracy', 'aligned_box_iou', 'reduce_loss', 'weight_reduce_loss']
