"""Registries for kiln (MMEngine's ``mmengine.registry``): name -> class/function, and builders.

Plain Python: importing this package does not import torch (registries import their ``locations``
only when first searched).
"""
from .build_functions import NotRegisteredError, build_from_cfg, check_config_types
from .default_scope import SCOPE_ALIASES, init_default_scope
from .listing import format_registries
from .registry import Registry
from .root import (DATA_SAMPLERS, DATASETS, EVALUATOR, FUNCTIONS, HOOKS, LOG_PROCESSORS, LOOPS,
                   METRICS, MODEL_WRAPPERS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                   OPTIMIZERS, PARAM_SCHEDULERS, ROOT_REGISTRIES, RUNNERS, TASK_UTILS, TRANSFORMS,
                   VISBACKENDS, VISUALIZERS, WEIGHT_INITIALIZERS)

__all__ = [
    'Registry', 'build_from_cfg', 'NotRegisteredError', 'check_config_types', 'init_default_scope', 'format_registries', 'SCOPE_ALIASES',
    'ROOT_REGISTRIES', 'RUNNERS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS',
    'FUNCTIONS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'TASK_UTILS',
    'VISBACKENDS', 'VISUALIZERS', 'LOG_PROCESSORS',
]
