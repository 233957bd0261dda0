"""Optimizer wrappers, constructors, lr scaling and parameter schedulers."""
from .optimizer import (TORCH_OPTIMIZERS, AmpOptimWrapper, DefaultOptimWrapperConstructor,
                        MultiOptimWrapperConstructor, OptimWrapper,
                        OptimWrapperDict, build_optim_wrapper, register_torch_optimizers, scale_lr)
from .scheduler import (INF, ConstantLR, ConstantMomentum, ConstantParamScheduler, CosineAnnealingLR,
                        CosineAnnealingMomentum, CosineAnnealingParamScheduler, CosineRestartLR,
                        CosineRestartMomentum, CosineRestartParamScheduler, ExponentialLR, ExponentialMomentum,
                        ExponentialParamScheduler, LinearLR, LinearMomentum, LinearParamScheduler, MultiStepLR,
                        MultiStepMomentum, MultiStepParamScheduler, OneCycleLR, OneCycleParamScheduler, PolyLR,
                        PolyMomentum, PolyParamScheduler, QuadraticWarmupLR, QuadraticWarmupMomentum,
                        QuadraticWarmupParamScheduler, ReduceOnPlateauLR, ReduceOnPlateauMomentum,
                        ReduceOnPlateauParamScheduler, StepLR, StepMomentum, StepParamScheduler, _ParamScheduler)

__all__ = ['TORCH_OPTIMIZERS', 'AmpOptimWrapper', 'DefaultOptimWrapperConstructor',
           'MultiOptimWrapperConstructor', 'OptimWrapper',
           'OptimWrapperDict', 'build_optim_wrapper', 'register_torch_optimizers', 'scale_lr', 'INF',
           'ConstantLR', 'ConstantMomentum', 'ConstantParamScheduler', 'CosineAnnealingLR', 'CosineAnnealingMomentum',
           'CosineAnnealingParamScheduler', 'CosineRestartLR', 'CosineRestartMomentum', 'CosineRestartParamScheduler',
           'ExponentialLR', 'ExponentialMomentum', 'ExponentialParamScheduler', 'LinearLR', 'LinearMomentum',
           'LinearParamScheduler', 'MultiStepLR', 'MultiStepMomentum', 'MultiStepParamScheduler', 'OneCycleLR',
           'OneCycleParamScheduler', 'PolyLR', 'PolyMomentum', 'PolyParamScheduler', 'QuadraticWarmupLR',
           'QuadraticWarmupMomentum', 'QuadraticWarmupParamScheduler', 'ReduceOnPlateauLR',
           'ReduceOnPlateauMomentum', 'ReduceOnPlateauParamScheduler', 'StepLR', 'StepMomentum',
           'StepParamScheduler', '_ParamScheduler']
