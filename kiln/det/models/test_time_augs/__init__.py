"""Test-time augmentation wrappers (MMDetection's ``mmdet.models.test_time_augs``)."""
from ...datasets.transforms import tta as _tta  # noqa: F401  (registers TestTimeAug with the TTA model)
from .det_tta import DetTTAModel, flip_masks

__all__ = ['DetTTAModel', 'flip_masks']
