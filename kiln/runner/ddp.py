"""Moved to :mod:`kiln.model.wrappers` (re-exported here for compatibility)."""
from kiln.model.wrappers.distributed import DistributedDataParallel, KilnDistributedDataParallel

__all__ = ['DistributedDataParallel', 'KilnDistributedDataParallel']
