"""Checkpoint I/O, usable without a Runner (the Runner, hooks and the CLI all use it).

- ``io``: atomic, weights-only, local or fsspec files: ``save_checkpoint``, ``read_checkpoint``,
  ``find_latest_checkpoint`` / ``write_last_checkpoint``, ``to_weights_only``, ``CheckpointError``.
- ``state_dict``: ``weights_to_cpu``, ``get_state_dict``, ``load_state_dict`` (all differences reported at once),
  ``revise_state_dict``, ``load_checkpoint`` (file -> model).
- ``publish``: ``publish_checkpoint`` (release files with a SHA-256 prefix in the name, ``.pth`` or safetensors).

What a Runner checkpoint holds is assembled by ``Runner.state_dict()`` (docs/checkpoints.md).
"""
from .io import (CheckpointError, find_latest_checkpoint, read_checkpoint, save_checkpoint, to_weights_only,
                 write_last_checkpoint)
from .publish import publish_checkpoint
from .state_dict import (LoadStateDictResult, get_state_dict, load_checkpoint, load_state_dict, revise_state_dict,
                         weights_to_cpu)

__all__ = ['CheckpointError', 'save_checkpoint', 'read_checkpoint', 'find_latest_checkpoint', 'write_last_checkpoint',
           'to_weights_only', 'publish_checkpoint', 'LoadStateDictResult', 'get_state_dict', 'load_checkpoint',
           'load_state_dict', 'revise_state_dict', 'weights_to_cpu']
