"""Old home of the checkpoint functions: they live in :mod:`kiln.checkpoint` now (re-exported here so that
``from kiln.runner.checkpoint import load_checkpoint, save_checkpoint`` keeps working)."""
from kiln.checkpoint import (CheckpointError, LoadStateDictResult, find_latest_checkpoint, get_state_dict,
                             load_checkpoint, load_state_dict, publish_checkpoint, read_checkpoint, save_checkpoint,
                             weights_to_cpu, write_last_checkpoint)
from kiln.checkpoint.io import read_checkpoint as _load_checkpoint  # MMEngine's private name, used by scripts

__all__ = ['CheckpointError', 'save_checkpoint', 'weights_to_cpu', 'get_state_dict', 'load_state_dict',
           'LoadStateDictResult', 'load_checkpoint', 'find_latest_checkpoint', 'write_last_checkpoint',
           'publish_checkpoint', 'read_checkpoint', '_load_checkpoint']
