"""DistSamplerSeedHook: tell the train sampler which epoch starts, so every epoch gets a new shuffle."""
from __future__ import annotations

from typing import TYPE_CHECKING

from kiln.dataset.loader import get_sampler  # noqa: F401  (re-exported: its old home)
from kiln.registry import HOOKS

from .hook import Hook

if TYPE_CHECKING:  # pragma: no cover
    from kiln.runner import Runner

__all__ = ['DistSamplerSeedHook', 'get_sampler']


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Call ``set_epoch(runner.epoch)`` on the train dataloader's sampler (or its batch sampler's sampler)
    before every train epoch; samplers without ``set_epoch`` are left alone (MMEngine's DistSamplerSeedHook).

    ``DefaultSampler`` shuffles with ``seed + epoch``, so without this hook every epoch would see the same order.
    """

    priority = 'NORMAL'

    def before_train_epoch(self, runner: Runner) -> None:
        sampler = get_sampler(runner.train_loop.dataloader)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(runner.epoch)
