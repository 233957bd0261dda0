"""``PipelineSwitchHook``: replace the training dataset's pipeline from a given epoch on (MMDetection's hook of
the same name, used by RTMDet to train the last epochs without Mosaic / MixUp / strong affine augmentation)."""
from __future__ import annotations

from typing import Any, Sequence

from kiln.dataset.compose import Compose
from kiln.hooks import Hook
from kiln.registry import HOOKS

__all__ = ['PipelineSwitchHook']


@HOOKS.register_module()
class PipelineSwitchHook(Hook):
    """From epoch ``switch_epoch`` (0-based, checked in ``before_train_epoch``, so also after a resume) the train
    dataloader's dataset runs ``switch_pipeline`` instead of its own pipeline. The dataloader's persistent worker
    iterator is dropped so the next epoch starts workers that see the new pipeline.

    Args:
        switch_epoch: first epoch trained with ``switch_pipeline``.
        switch_pipeline: transform configs (or callables), as a dataset's ``pipeline``.

    Raises:
        ValueError: ``switch_epoch`` < 0.
        TypeError: (at the switch) the train dataset has no ``Compose`` ``pipeline`` attribute (e.g. a
            ``MultiImageMixDataset`` wrapper, whose mixing transforms are turned off with ``skip_type_keys``,
            or a concatenation); the message names the dataset type.
    """

    priority = 'NORMAL'

    def __init__(self, switch_epoch: int, switch_pipeline: Sequence[dict | Any]) -> None:
        if switch_epoch < 0:
            raise ValueError(f'PipelineSwitchHook: switch_epoch must be >= 0, got {switch_epoch}')
        self.switch_epoch = int(switch_epoch)
        self.switch_pipeline = list(switch_pipeline)
        self._switched = False

    def before_train_epoch(self, runner: Any) -> None:
        if self._switched or runner.epoch < self.switch_epoch:
            return
        loader = runner.train_dataloader
        dataset = loader.dataset
        if not isinstance(getattr(dataset, 'pipeline', None), Compose):
            raise TypeError(f'PipelineSwitchHook: the train dataset {type(dataset).__name__} has no Compose '
                            '`pipeline` to replace (for MultiImageMixDataset use its skip_type_keys)')
        dataset.pipeline = Compose(self.switch_pipeline)
        if getattr(loader, '_iterator', None) is not None:
            loader._iterator = None  # persistent workers hold a copy of the old dataset: start new ones
        self._switched = True
        runner.logger.info(f'PipelineSwitchHook: epoch {runner.epoch}: switched the train pipeline to '
                           f'{[getattr(t, "__name__", type(t).__name__) for t in dataset.pipeline.transforms]}')
