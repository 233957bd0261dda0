"""Model wrappers for distributed training, registered in ``MODEL_WRAPPERS``: DDP
(``KilnDistributedDataParallel`` / ``MMDistributedDataParallel``) and FSDP2 (``FSDP``)."""
from .distributed import DistributedDataParallel, KilnDistributedDataParallel
from .fully_sharded import FullyShardedDataParallel
from .sync_bn import convert_sync_batchnorm, revert_sync_batchnorm
from .utils import broadcast_module_state, is_model_wrapper, needs_all_ranks_to_save, unwrap_model, wrap_model

__all__ = ['DistributedDataParallel', 'KilnDistributedDataParallel', 'FullyShardedDataParallel',
           'convert_sync_batchnorm', 'revert_sync_batchnorm', 'is_model_wrapper', 'unwrap_model',
           'needs_all_ranks_to_save', 'wrap_model', 'broadcast_module_state']
