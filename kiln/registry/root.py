"""kiln's root registries. Every package registers into these (``kiln.det`` included); each one
imports its ``locations`` the first time it is searched, so ``MODELS.build(...)`` finds kiln's own
classes without the caller importing them."""
from __future__ import annotations

from .registry import Registry

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'FUNCTIONS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'TASK_UTILS',
    'VISBACKENDS', 'VISUALIZERS', 'LOG_PROCESSORS', 'ROOT_REGISTRIES',
]


def _root(name: str, *locations: str) -> Registry:
    return Registry(name, scope='kiln', locations=list(locations))


#: Runner classes (``runner_type``) and training/validation/test loops.
RUNNERS = _root('runner', 'kiln.runner')
LOOPS = _root('loop', 'kiln.runner')
#: Hooks (CheckpointHook, LoggerHook ...).
HOOKS = _root('hook', 'kiln.hooks')
#: Datasets, dataloader samplers, data transforms and functions such as collate functions.
DATASETS = _root('dataset', 'kiln.dataset')
DATA_SAMPLERS = _root('data sampler', 'kiln.dataset')
TRANSFORMS = _root('transform', 'kiln.dataset')
FUNCTIONS = _root('function', 'kiln.dataset')
#: Models and model parts, model wrappers (DDP ...) and weight initializers (``init_cfg``).
MODELS = _root('model', 'kiln.model')
MODEL_WRAPPERS = _root('model_wrapper', 'kiln.model')
WEIGHT_INITIALIZERS = _root('weight initializer', 'kiln.model')
#: Optimizers, optimizer wrappers and their constructors, parameter schedulers.
OPTIMIZERS = _root('optimizer', 'kiln.optim')
OPTIM_WRAPPERS = _root('optim_wrapper', 'kiln.optim')
OPTIM_WRAPPER_CONSTRUCTORS = _root('optimizer wrapper constructor', 'kiln.optim')
PARAM_SCHEDULERS = _root('parameter scheduler', 'kiln.optim')
#: Metrics and evaluators.
METRICS = _root('metric', 'kiln.evaluator')
EVALUATOR = _root('evaluator', 'kiln.evaluator')
#: Task-specific parts (prior generators, assigners, samplers, box coders), as in MMDetection.
TASK_UTILS = _root('task util')
#: Visualization backends and visualizers.
VISBACKENDS = _root('vis_backend', 'kiln.visualization')
VISUALIZERS = _root('visualizer', 'kiln.visualization')
#: Log processors.
LOG_PROCESSORS = _root('log_processor', 'kiln.logging')

#: All root registries by their variable name.
ROOT_REGISTRIES: dict[str, Registry] = {
    name: value for name, value in globals().items() if isinstance(value, Registry)}
