"""The data layer: datasets, transforms pipeline, samplers, collate functions and dataloader building
(usable without a Runner)."""
from .base_dataset import BaseDataset
from .compose import BaseTransform, Compose
from .dataset_wrapper import ClassBalancedDataset, ConcatDataset, RepeatDataset
from .loader import BadSampleWarning, SeededDataLoader, build_dataloader, get_sampler
from .sampler import DefaultSampler, InfiniteSampler, RandomSubsetSampler, sync_random_seed
from .seeding import SampleIndex, global_rng_guard, sample_rng, sample_seed, seed_sample
from .utils import default_collate, pseudo_collate, worker_init_fn

__all__ = ['BaseDataset', 'BaseTransform', 'Compose', 'ClassBalancedDataset', 'ConcatDataset', 'RepeatDataset',
           'DefaultSampler', 'RandomSubsetSampler',
           'InfiniteSampler', 'sync_random_seed', 'SampleIndex', 'sample_rng', 'sample_seed', 'seed_sample',
           'global_rng_guard', 'BadSampleWarning', 'default_collate', 'pseudo_collate', 'worker_init_fn', 'SeededDataLoader',
           'build_dataloader', 'get_sampler']
