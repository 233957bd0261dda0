"""Process set-up for a run: random seeds, cuDNN / multiprocessing options, distributed init, timestamp and a
cheap environment summary."""
from __future__ import annotations

import os
import platform
import random
import sys
import time
from importlib import metadata
from typing import Any

import numpy as np
import torch

__all__ = ['set_random_seed', 'setup_env', 'make_timestamp', 'collect_env', 'get_rng_state', 'set_rng_state']


def set_random_seed(seed: int | None = None, deterministic: bool = False, diff_rank_seed: bool = False) -> int:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and all CUDA devices) and return the seed used.

    Args:
        seed: the seed; None draws a random one on rank 0 and shares it with every rank
            (``kiln.dist.sync_random_seed``).
        deterministic: also make cuDNN deterministic (``cudnn.deterministic=True, benchmark=False``) and call
            ``torch.use_deterministic_algorithms(True)`` (slower; some ops then raise if they have no
            deterministic implementation). Sets ``CUBLAS_WORKSPACE_CONFIG`` when it is unset.
        diff_rank_seed: add the global rank to the seed, so ranks draw different random streams.

    Returns:
        The seed actually used (before adding the rank), an int in [0, 2**32).
    """
    from kiln.dist import get_rank, sync_random_seed
    if seed is None:
        seed = sync_random_seed()
    seed = int(seed)
    rank_seed = seed + get_rank() if diff_rank_seed else seed
    random.seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    torch.manual_seed(rank_seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(rank_seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True)
    return seed


def setup_env(env_cfg: dict | None, launcher: str = 'none') -> bool:
    """Apply ``env_cfg`` (MMEngine keys) and start the process group when ``launcher != 'none'``.

    ``env_cfg`` keys: ``cudnn_benchmark`` (bool), ``mp_cfg=dict(mp_start_method=..., opencv_num_threads=...)``
    (the start method is set only if it differs from the current one), ``dist_cfg=dict(backend=..., **kwargs
    for init_process_group)`` (``'nccl'`` falls back to ``'gloo'`` with a warning without CUDA), and kiln's
    ``malloc_cfg`` (glibc malloc settings, default off; ``True`` or a dict turns them on: :func:`kiln.utils.malloc.tune_malloc`).

    Returns:
        True when the run is distributed.

    Raises:
        ValueError: unknown launcher (from ``kiln.dist.init_dist``).
    """
    env_cfg = dict(env_cfg or {})
    from kiln.utils.malloc import tune_malloc
    tune_malloc(env_cfg.get('malloc_cfg'), source='Runner')  # glibc: fixed mmap threshold (kiln.utils.malloc)
    if env_cfg.get('cudnn_benchmark'):
        torch.backends.cudnn.benchmark = True
    mp_cfg = dict(env_cfg.get('mp_cfg') or {})
    method = mp_cfg.get('mp_start_method')
    if method is not None and sys.platform != 'win32':
        import multiprocessing as mp
        if mp.get_start_method(allow_none=True) != method:
            mp.set_start_method(method, force=True)
    threads = mp_cfg.get('opencv_num_threads')
    if threads is not None and 'cv2' in sys.modules:
        sys.modules['cv2'].setNumThreads(int(threads))
    if launcher in (None, 'none'):
        return False
    from kiln.dist import init_dist, is_distributed
    if not is_distributed():
        dist_cfg = dict(env_cfg.get('dist_cfg') or {})
        backend = dist_cfg.pop('backend', None)  # 'nccl' without CUDA: init_dist warns and uses 'gloo'
        init_dist(launcher, backend=backend, **dist_cfg)
    return True


def make_timestamp() -> str:
    """``YYYYmmdd_HHMMSS`` local time, taken on rank 0 and shared with every rank when distributed."""
    from kiln.dist import broadcast_object_list, get_world_size
    box = [time.strftime('%Y%m%d_%H%M%S', time.localtime())]
    if get_world_size() > 1:
        broadcast_object_list(box, src=0)
    return box[0]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return 'not installed'


def collect_env() -> dict[str, Any]:
    """A cheap environment summary (no subprocess, no heavy import): platform, Python, kiln, torch,
    torchvision, numpy versions, CUDA availability / devices, cuDNN and the distributed world size."""
    import kiln
    from kiln.dist import get_world_size
    env: dict[str, Any] = {
        'sys.platform': sys.platform,
        'Python': sys.version.replace('\n', ' '),
        'machine': platform.machine(),
        'kiln': kiln.__version__,
        'PyTorch': torch.__version__,
        'TorchVision': _version('torchvision'),
        'NumPy': np.__version__,
        'CUDA available': torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env['CUDA'] = torch.version.cuda
        env['cuDNN'] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            env[f'GPU {i}'] = torch.cuda.get_device_name(i)
    env['world size'] = get_world_size()
    return env


def get_rng_state() -> dict[str, Any]:
    """The states of Python's ``random``, NumPy's global generator and torch's CPU (and CUDA) generators as
    plain containers and uint8 tensors (loadable with ``torch.load(weights_only=True)``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=[version, list(internal), gauss],
                 numpy=[str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                        float(cached)],
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned (missing entries are left alone)."""
    if 'python' in state:
        version, internal, gauss = state['python']
        random.setstate((version, tuple(internal), gauss))
    if 'numpy' in state:
        kind, keys, pos, has_gauss, cached = state['numpy']
        keys = np.asarray(keys.numpy() if isinstance(keys, torch.Tensor) else keys, dtype=np.uint32)
        np.random.set_state((kind, keys, int(pos), int(has_gauss), float(cached)))
    if 'torch' in state:
        torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
