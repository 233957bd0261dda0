"""Parameter schedulers (lr, momentum, any param-group value)."""
from .cosine_restart import CosineRestartLR, CosineRestartMomentum, CosineRestartParamScheduler
from .lr_scheduler import (ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, PolyLR,
                           StepLR)
from .momentum_scheduler import (ConstantMomentum, CosineAnnealingMomentum, ExponentialMomentum, LinearMomentum,
                                 MultiStepMomentum, PolyMomentum, StepMomentum)
from .one_cycle import OneCycleLR, OneCycleParamScheduler
from .param_scheduler import (INF, ConstantParamScheduler, CosineAnnealingParamScheduler,
                              ExponentialParamScheduler, LinearParamScheduler, MultiStepParamScheduler,
                              PolyParamScheduler, StepParamScheduler, _ParamScheduler)
from .quadratic_warmup import QuadraticWarmupLR, QuadraticWarmupMomentum, QuadraticWarmupParamScheduler
from .reduce_on_plateau import ReduceOnPlateauLR, ReduceOnPlateauMomentum, ReduceOnPlateauParamScheduler

__all__ = ['ConstantLR', 'CosineAnnealingLR', 'ExponentialLR', 'LinearLR', 'MultiStepLR', 'PolyLR', 'StepLR',
           'ConstantMomentum', 'CosineAnnealingMomentum', 'ExponentialMomentum', 'LinearMomentum',
           'MultiStepMomentum', 'PolyMomentum', 'StepMomentum', 'INF', 'ConstantParamScheduler',
           'CosineAnnealingParamScheduler', 'ExponentialParamScheduler', 'LinearParamScheduler',
           'MultiStepParamScheduler', 'PolyParamScheduler', 'StepParamScheduler', '_ParamScheduler',
           'CosineRestartLR', 'CosineRestartMomentum', 'CosineRestartParamScheduler', 'OneCycleLR',
           'OneCycleParamScheduler', 'ReduceOnPlateauLR', 'ReduceOnPlateauMomentum',
           'ReduceOnPlateauParamScheduler', 'QuadraticWarmupLR', 'QuadraticWarmupMomentum',
           'QuadraticWarmupParamScheduler']
