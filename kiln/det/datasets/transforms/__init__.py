"""Detection transforms (registered in ``kiln.registry.TRANSFORMS``)."""
from .filtering import FilterAnnotations
from .flip import RandomFlip, bbox_flip
from .formatting import PackDetInputs
from .geometric import Expand, MinIoURandomCrop, RandomAffine, RandomChoiceResize, RandomShift
from .loading import LoadAnnotations, LoadImageFromFile, imfrombytes
from .mix import CachedMixUp, CachedMosaic, MixUp, Mosaic
from .pad_crop import Pad, RandomCrop
from .photometric import CutOut, PhotoMetricDistortion, YOLOXHSVRandomAug
from .resize import RandomResize, Resize, rescale_size
from .tta import TestTimeAug

__all__ = ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomResize', 'RandomFlip', 'PackDetInputs', 'Pad',
           'RandomCrop', 'bbox_flip', 'imfrombytes', 'rescale_size', 'RandomChoiceResize', 'Expand',
           'MinIoURandomCrop', 'RandomAffine', 'RandomShift', 'PhotoMetricDistortion', 'YOLOXHSVRandomAug', 'CutOut',
           'Mosaic', 'MixUp', 'CachedMosaic', 'CachedMixUp', 'FilterAnnotations', 'TestTimeAug']
