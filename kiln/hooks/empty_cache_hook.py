"""EmptyCacheHook: release the CUDA caching allocator's unused memory at chosen points."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['EmptyCacheHook']


@HOOKS.register_module()
class EmptyCacheHook(Hook):
    """Call ``torch.cuda.empty_cache()`` before / after every epoch and/or after every iteration of all modes
    (MMEngine's ``EmptyCacheHook``). Without CUDA it does nothing. Emptying the cache does not free tensors
    still in use; it returns cached blocks to the driver (useful when other processes share the GPU, or to read
    ``nvidia-smi`` honestly) at the cost of slower allocations afterwards.

    Args:
        before_epoch: empty the cache before each train/val/test epoch.
        after_epoch: empty it after each epoch (default True).
        after_iter: empty it after each iteration (slow; for debugging fragmentation).
    """

    priority = 'NORMAL'

    def __init__(self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False) -> None:
        self._do_before_epoch = before_epoch
        self._do_after_epoch = after_epoch
        self._do_after_iter = after_iter
        self.calls = 0  # how many times the cache was emptied (for tests and debugging)

    def _empty(self) -> None:
        import torch
        self.calls += 1
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def _after_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None,
                    mode: str = 'train') -> None:
        if self._do_after_iter:
            self._empty()

    def _before_epoch(self, runner: Runner, mode: str = 'train') -> None:
        if self._do_before_epoch:
            self._empty()

    def _after_epoch(self, runner: Runner, mode: str = 'train') -> None:
        if self._do_after_epoch:
            self._empty()
