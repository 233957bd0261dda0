"""Optimizer wrappers, constructors and parameter schedulers."""
from .optimizer import (TORCH_OPTIMIZERS, AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper,
                        OptimWrapperDict, build_optim_wrapper, register_torch_optimizers)
from .scheduler import (INF, ConstantLR, ConstantMomentum, ConstantParamScheduler, CosineAnnealingLR,
                        CosineAnnealingMomentum, CosineAnnealingParamScheduler, ExponentialLR,
                        ExponentialMomentum, ExponentialParamScheduler, LinearLR, LinearMomentum,
                        LinearParamScheduler, MultiStepLR, MultiStepMomentum, MultiStepParamScheduler, PolyLR,
                        PolyMomentum, PolyParamScheduler, StepLR, StepMomentum, StepParamScheduler,
                        _ParamScheduler)

__all__ = ['TORCH_OPTIMIZERS', 'AmpOptimWrapper', 'DefaultOptimWrapperConstructor', 'OptimWrapper',
           'OptimWrapperDict', 'build_optim_wrapper', 'register_torch_optimizers', 'INF', 'ConstantLR',
           'ConstantMomentum', 'ConstantParamScheduler', 'CosineAnnealingLR', 'CosineAnnealingMomentum',
           'CosineAnnealingParamScheduler', 'ExponentialLR', 'ExponentialMomentum', 'ExponentialParamScheduler',
           'LinearLR', 'LinearMomentum', 'LinearParamScheduler', 'MultiStepLR', 'MultiStepMomentum',
           'MultiStepParamScheduler', 'PolyLR', 'PolyMomentum', 'PolyParamScheduler', 'StepLR', 'StepMomentum',
           'StepParamScheduler', '_ParamScheduler']
