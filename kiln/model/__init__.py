"""Model base classes, weight initialisation and data preprocessors."""
from .base_model import BaseModel
from .base_module import BaseModule, ModuleList, Sequential
from .data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from .weight_init import (BaseInit, Caffe2XavierInit, ConstantInit, KaimingInit, NormalInit, PretrainedInit,
                          TruncNormalInit, UniformInit, XavierInit, bias_init_with_prob, caffe2_xavier_init,
                          constant_init, initialize, kaiming_init, normal_init, trunc_normal_init, uniform_init,
                          xavier_init)

__all__ = ['BaseModel', 'BaseModule', 'ModuleList', 'Sequential', 'BaseDataPreprocessor', 'ImgDataPreprocessor',
           'BaseInit', 'Caffe2XavierInit', 'ConstantInit', 'KaimingInit', 'NormalInit', 'PretrainedInit',
           'TruncNormalInit', 'UniformInit', 'XavierInit', 'bias_init_with_prob', 'caffe2_xavier_init',
           'constant_init', 'initialize', 'kaiming_init', 'normal_init', 'trunc_normal_init', 'uniform_init',
           'xavier_init']
