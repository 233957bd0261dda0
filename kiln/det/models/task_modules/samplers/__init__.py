"""Samplers, registered in ``kiln.registry.MODELS`` and ``TASK_UTILS``."""
from .pseudo_sampler import PseudoSampler
from .random_sampler import RandomSampler
from .sampling_result import SamplingResult

__all__ = ['PseudoSampler', 'RandomSampler', 'SamplingResult']
