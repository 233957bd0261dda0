"""Detection transforms (registered in ``kiln.registry.TRANSFORMS``)."""
from .flip import RandomFlip, bbox_flip
from .formatting import PackDetInputs
from .loading import LoadAnnotations, LoadImageFromFile, imfrombytes
from .pad_crop import Pad, RandomCrop
from .resize import RandomResize, Resize, rescale_size

__all__ = ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomResize', 'RandomFlip', 'PackDetInputs', 'Pad',
           'RandomCrop', 'bbox_flip', 'imfrombytes', 'rescale_size']
