"""Task modules (prior generators, box coders, assigners, samplers).

MMDetection registers these in a ``TASK_UTILS`` registry; kiln registers them in ``kiln.registry.TASK_UTILS``
and ``kiln.registry.MODELS`` under the same ``type`` names, so MMDetection configs build them unchanged.
"""
from .assigners import ATSSAssigner, AssignResult, MaxIoUAssigner
from .coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder
from .prior_generators import AnchorGenerator, MlvlPointGenerator
from .samplers import PseudoSampler, RandomSampler, SamplingResult

__all__ = ['ATSSAssigner', 'AnchorGenerator', 'AssignResult', 'DeltaXYWHBBoxCoder', 'DistancePointBBoxCoder',
           'MaxIoUAssigner', 'MlvlPointGenerator', 'PseudoSampler', 'RandomSampler', 'SamplingResult']
