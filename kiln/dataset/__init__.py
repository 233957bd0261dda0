"""Datasets, transforms pipeline, samplers and collate functions."""
from .base_dataset import BaseDataset
from .compose import BaseTransform, Compose
from .dataset_wrapper import ConcatDataset, RepeatDataset
from .seeding import SampleIndex, sample_rng, sample_seed
from .sampler import DefaultSampler, InfiniteSampler, sync_random_seed
from .utils import default_collate, pseudo_collate, worker_init_fn

__all__ = ['BaseDataset', 'BaseTransform', 'Compose', 'ConcatDataset', 'RepeatDataset', 'DefaultSampler',
           'InfiniteSampler', 'sync_random_seed', 'SampleIndex', 'sample_rng', 'sample_seed', 'default_collate',
           'pseudo_collate', 'worker_init_fn']
