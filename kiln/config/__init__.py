"""Configuration files for kiln (MMEngine's ``mmengine.config``): load, inherit, override, dump.

Plain Python: importing this package does not import torch.
"""
from collections.abc import Mapping as _Mapping

from .config import Config
from .config_dict import ConfigDict
from .dict_action import DictAction

_Mapping.register(Config)

__all__ = ['Config', 'ConfigDict', 'DictAction']
