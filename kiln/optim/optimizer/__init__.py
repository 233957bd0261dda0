"""Optimizer wrappers and their builders."""
from .amp_optim_wrapper import AmpOptimWrapper
from .builder import TORCH_OPTIMIZERS, build_optim_wrapper, register_torch_optimizers
from .default_constructor import DefaultOptimWrapperConstructor
from .multi_constructor import MultiOptimWrapperConstructor
from .optim_wrapper import OptimWrapper
from .optim_wrapper_dict import OptimWrapperDict
from .scale_lr import scale_lr

__all__ = ['AmpOptimWrapper', 'TORCH_OPTIMIZERS', 'build_optim_wrapper', 'register_torch_optimizers',
           'DefaultOptimWrapperConstructor', 'MultiOptimWrapperConstructor', 'OptimWrapper', 'OptimWrapperDict',
           'scale_lr']
