"""Process-group set-up and rank queries.

Every query works without ``torch.distributed`` being initialised (a single process is
rank 0 of a world of size 1), so calling code never branches on the launch mode.
"""
from __future__ import annotations

import datetime
import functools
import os
import subprocess
import warnings
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as torch_dist

__all__ = ['init_dist', 'is_distributed', 'get_rank', 'get_world_size', 'get_local_rank',
           'get_dist_info', 'is_main_process', 'master_only', 'barrier', 'get_backend', 'rank_log_files']

F = TypeVar('F', bound=Callable[..., Any])

_LAUNCHERS = ('pytorch', 'slurm', 'mpi')


def init_dist(launcher: str, backend: str | None = None, **kwargs: Any) -> None:
    """Initialise the default process group from the launcher's environment.

    Args:
        launcher: ``'pytorch'`` (torchrun / ``torch.distributed.launch``: reads ``RANK``,
            ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), ``'slurm'``
            (reads ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODELIST``;
            ``MASTER_PORT`` defaults to 29500) or ``'mpi'`` (Open MPI's ``OMPI_COMM_WORLD_*``
            variables; ``MASTER_ADDR``/``MASTER_PORT`` must be set).
        backend: ``'nccl'``, ``'gloo'``...; defaults to ``'nccl'`` when CUDA is available,
            else ``'gloo'``. ``'nccl'`` without CUDA falls back to ``'gloo'`` with a warning.
        **kwargs: Passed to ``torch.distributed.init_process_group``. ``timeout`` may be
            given in seconds (int/float) as in MMEngine's ``env_cfg.dist_cfg``.

    When CUDA is available the current CUDA device is set to the local rank. Under torchrun's elastic restarts
    (``TORCHELASTIC_RESTART_COUNT`` set) the rendezvous keys are prefixed with the attempt number, so a
    restarted job never reads the addresses of the workers that died.

    Raises:
        ValueError: Unknown launcher.
        KeyError: A required environment variable is missing (its name is in the message).
    """
    if launcher not in _LAUNCHERS:
        raise ValueError(f'init_dist: launcher must be one of {_LAUNCHERS}, got {launcher!r}')
    if launcher == 'slurm':
        _env_from_slurm()
    elif launcher == 'mpi':
        _env_from_mpi()
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise KeyError(f'init_dist(launcher={launcher!r}): environment variable {key} is not set; '
                           'start the job with torchrun or set it')
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if backend is None:
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    elif backend == 'nccl' and not torch.cuda.is_available():
        warnings.warn("init_dist: backend 'nccl' needs CUDA, which is not available here; using 'gloo'",
                      stacklevel=2)
        backend = 'gloo'
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    timeout = kwargs.pop('timeout', None)
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        timeout = datetime.timedelta(seconds=float(timeout))
    if timeout is not None:
        kwargs['timeout'] = timeout
    attempt = os.environ.get('TORCHELASTIC_RESTART_COUNT')
    if attempt is None:
        torch_dist.init_process_group(backend=backend, init_method='env://', **kwargs)
        return
    # Restarted by torchrun (--max-restarts): the agent's store outlives the failed workers and still holds
    # their addresses, so each attempt uses its own key prefix (otherwise a rank may dial a dead peer).
    rdzv_kwargs = {'timeout': kwargs['timeout']} if 'timeout' in kwargs else {}
    store, rank, world_size = next(torch_dist.rendezvous('env://', **rdzv_kwargs))
    store = torch_dist.PrefixStore(f'kiln/attempt_{attempt}', store)
    torch_dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, **kwargs)


def _env_from_slurm() -> None:
    env = os.environ
    try:
        rank, ntasks, local_id, nodes = (env['SLURM_PROCID'], env['SLURM_NTASKS'],
                                         env['SLURM_LOCALID'], env['SLURM_NODELIST'])
    except KeyError as e:
        raise KeyError(f'init_dist(launcher="slurm"): environment variable {e.args[0]} is not set; '
                       'run under srun') from None
    if 'MASTER_ADDR' not in env:
        out = subprocess.run(['scontrol', 'show', 'hostname', nodes], capture_output=True,
                             text=True, check=True).stdout
        env['MASTER_ADDR'] = out.split()[0]
    env.setdefault('MASTER_PORT', '29500')
    env['RANK'], env['WORLD_SIZE'], env['LOCAL_RANK'] = rank, ntasks, local_id


def _env_from_mpi() -> None:
    env = os.environ
    try:
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env['OMPI_COMM_WORLD_LOCAL_RANK']
    except KeyError as e:
        raise KeyError(f'init_dist(launcher="mpi"): environment variable {e.args[0]} is not set; '
                       'run under mpirun') from None


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and its default group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_backend() -> str | None:
    """Backend name of the default group (``'gloo'``, ``'nccl'``...) or None when not distributed."""
    return str(torch_dist.get_backend()) if is_distributed() else None


def get_rank() -> int:
    """Global rank of this process; 0 when not distributed."""
    return torch_dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes in the default group; 1 when not distributed."""
    return torch_dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK``); 0 when not distributed."""
    return int(os.environ.get('LOCAL_RANK', 0)) if is_distributed() else 0


def get_dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when not distributed."""
    return get_rank(), get_world_size()


def is_main_process() -> bool:
    """True on global rank 0 (always True when not distributed)."""
    return get_rank() == 0


def master_only(func: F) -> F:
    """Decorator: run ``func`` on rank 0 only; other ranks get ``None`` back."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return func(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]


def barrier() -> None:
    """Block until every rank reaches this point; no-op when not distributed."""
    if is_distributed():
        torch_dist.barrier()


def rank_log_files(log_level: Any, cfg: Any = None) -> bool:
    """Whether every rank should write its own log file (``<timestamp>_rank<r>.log``) in a distributed run:
    with ``log_level='DEBUG'`` or the config key ``log_cfg=dict(distributed=True)`` (as MMEngine's
    ``distributed=True``). Rank 0 always writes the main log."""
    if str(log_level).upper() == 'DEBUG' or log_level == 10:
        return True
    log_cfg = (cfg.get('log_cfg') if cfg is not None and hasattr(cfg, 'get') else None) or {}
    return bool(dict(log_cfg).get('distributed', False))
