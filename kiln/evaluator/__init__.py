"""Evaluator and metric base classes."""
from .evaluator import Evaluator
from .metric import BaseMetric, DumpResults

__all__ = ['Evaluator', 'BaseMetric', 'DumpResults']
