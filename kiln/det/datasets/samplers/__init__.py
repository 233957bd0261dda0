"""Detection samplers (registered in ``kiln.registry.DATA_SAMPLERS``)."""
from .batch_sampler import AspectRatioBatchSampler

__all__ = ['AspectRatioBatchSampler']
