"""Parameter schedulers (lr, momentum, any param-group value)."""
from .lr_scheduler import (ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, PolyLR,
                           StepLR)
from .momentum_scheduler import (ConstantMomentum, CosineAnnealingMomentum, ExponentialMomentum, LinearMomentum,
                                 MultiStepMomentum, PolyMomentum, StepMomentum)
from .param_scheduler import (INF, ConstantParamScheduler, CosineAnnealingParamScheduler,
                              ExponentialParamScheduler, LinearParamScheduler, MultiStepParamScheduler,
                              PolyParamScheduler, StepParamScheduler, _ParamScheduler)

__all__ = ['ConstantLR', 'CosineAnnealingLR', 'ExponentialLR', 'LinearLR', 'MultiStepLR', 'PolyLR', 'StepLR',
           'ConstantMomentum', 'CosineAnnealingMomentum', 'ExponentialMomentum', 'LinearMomentum',
           'MultiStepMomentum', 'PolyMomentum', 'StepMomentum', 'INF', 'ConstantParamScheduler',
           'CosineAnnealingParamScheduler', 'ExponentialParamScheduler', 'LinearParamScheduler',
           'MultiStepParamScheduler', 'PolyParamScheduler', 'StepParamScheduler', '_ParamScheduler']
