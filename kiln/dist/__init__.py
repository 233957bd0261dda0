"""Distributed helpers; every function is a no-op / identity when not distributed."""
from .comm import (all_gather, all_gather_object, all_reduce, broadcast, broadcast_object_list,
                   collect_results, sync_random_seed)
from .utils import (barrier, get_backend, get_dist_info, get_local_rank, get_rank, get_world_size,
                    init_dist, is_distributed, is_main_process, master_only, rank_log_files)

__all__ = [
    'init_dist', 'is_distributed', 'get_backend', 'get_rank', 'get_world_size', 'get_local_rank',
    'get_dist_info', 'is_main_process', 'master_only', 'barrier', 'all_reduce', 'all_gather',
    'all_gather_object', 'broadcast', 'broadcast_object_list', 'collect_results',
    'sync_random_seed', 'rank_log_files',
]
