"""Model base classes, weight initialisation and data preprocessors."""
from .averaged_model import (BaseAveragedModel, ExponentialMovingAverage, MomentumAnnealingEMA,
                             StochasticWeightAverage)
from .base_model import BaseModel
from .base_module import BaseModule, ModuleList, Sequential
from .base_tta_model import BaseTTAModel
from .data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from .init_report import InitReport
from .weight_init import (BaseInit, Caffe2XavierInit, ConstantInit, KaimingInit, NormalInit, PretrainedInit,
                          TruncNormalInit, UniformInit, XavierInit, bias_init_with_prob, caffe2_xavier_init,
                          constant_init, initialize, kaiming_init, normal_init, trunc_normal_init, uniform_init,
                          xavier_init)
from .wrappers import (FullyShardedDataParallel, KilnDistributedDataParallel, convert_sync_batchnorm,
                       is_model_wrapper, revert_sync_batchnorm)

__all__ = ['BaseAveragedModel', 'ExponentialMovingAverage', 'MomentumAnnealingEMA', 'StochasticWeightAverage',
           'BaseTTAModel', 'InitReport',
           'BaseModel', 'BaseModule', 'ModuleList', 'Sequential', 'BaseDataPreprocessor', 'ImgDataPreprocessor',
           'BaseInit', 'Caffe2XavierInit', 'ConstantInit', 'KaimingInit', 'NormalInit', 'PretrainedInit',
           'TruncNormalInit', 'UniformInit', 'XavierInit', 'bias_init_with_prob', 'caffe2_xavier_init',
           'constant_init', 'initialize', 'kaiming_init', 'normal_init', 'trunc_normal_init', 'uniform_init',
           'xavier_init', 'KilnDistributedDataParallel', 'FullyShardedDataParallel', 'convert_sync_batchnorm',
           'revert_sync_batchnorm', 'is_model_wrapper']
