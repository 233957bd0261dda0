"""Helpers for the detection models."""
from .misc import filter_scores_and_topk, multi_apply, reduce_mean, select_single_mlvl, unpack_gt_instances

__all__ = ['filter_scores_and_topk', 'multi_apply', 'reduce_mean', 'select_single_mlvl', 'unpack_gt_instances']
