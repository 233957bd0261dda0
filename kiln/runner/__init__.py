"""The Runner, its loops and hook priorities. Checkpoint I/O lives in :mod:`kiln.checkpoint` and dataloader
building in :mod:`kiln.dataset`; their names are re-exported here, where users of MMEngine look for them."""
from kiln.checkpoint import (find_latest_checkpoint, get_state_dict, load_checkpoint, load_state_dict,
                             save_checkpoint, weights_to_cpu, write_last_checkpoint)
from kiln.dataset import build_dataloader

from .builders import build_param_schedulers
from .env import collect_env, set_random_seed
from .loops import BaseLoop, EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from .priority import Priority, get_priority
from .runner import Runner

__all__ = ['Runner', 'BaseLoop', 'EpochBasedTrainLoop', 'IterBasedTrainLoop', 'ValLoop', 'TestLoop', 'Priority',
           'get_priority', 'build_dataloader', 'build_param_schedulers', 'set_random_seed', 'collect_env',
           'save_checkpoint', 'load_checkpoint', 'load_state_dict', 'get_state_dict', 'weights_to_cpu',
           'find_latest_checkpoint', 'write_last_checkpoint']
