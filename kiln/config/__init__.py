"""Configuration files for kiln (MMEngine's ``mmengine.config``): load, inherit, override, dump.

Plain Python: importing this package does not import torch.
"""
from collections.abc import Mapping as _Mapping

from .config import Config
from .config_dict import ConfigDict, key_path, set_key_path
from .dict_action import DictAction
from .lazy import LazyObject
from .pure_python import read_base

_Mapping.register(Config)

__all__ = ['Config', 'ConfigDict', 'DictAction', 'LazyObject', 'read_base', 'key_path',
           'set_key_path']
