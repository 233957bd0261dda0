"""``DataCheckHook``: data problems into the run's log file, and the model's ``num_classes`` against the data.

Datasets report what they drop or ignore while loading (dropped COCO boxes, VOC names not in ``classes``, COCO
sizes differing from the images ...) as ``UserWarning`` and keep the lines in ``data_warnings``. When the Runner
builds a dataset, it logs these warnings itself (terminal and log file, see ``kiln.runner.runner``); this hook
writes into the run's log file the lines of datasets built elsewhere (a DataLoader given to the Runner already
built, a ``lazy_init`` dataset), which Python has printed on the terminal already, and checks that every
classification head of the model has ``num_classes == len(classes)``.
"""
from __future__ import annotations

import logging
from typing import Any

from kiln.hooks import Hook
from kiln.logging import log_to_files
from kiln.registry import HOOKS

from ...datasets.checks import check_num_classes

__all__ = ['DataCheckHook']


def _leaves(dataset: Any) -> list[Any]:
    """The datasets inside wrappers (``datasets`` / ``dataset`` attributes), the dataset itself otherwise."""
    subs = getattr(dataset, 'datasets', None)
    if subs is not None:
        return [leaf for sub in subs for leaf in _leaves(sub)]
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        return _leaves(inner)
    return [dataset]


@HOOKS.register_module()
class DataCheckHook(Hook):
    """At ``before_run`` (after the Runner has built the loops it runs, before any iteration): write every
    dataset warning (``data_warnings``) that is not in the run's log yet into the log file (file handlers only:
    Python printed it on the terminal when the dataset was built), and check ``num_classes`` of the model heads
    (RPN heads excepted) against ``len(dataset.metainfo['classes'])`` of the first built dataset.

    Added to ``default_hooks`` by ``configs/_base_/default_runtime.py`` (``data_check=dict(type=
    'DataCheckHook')``); set it to None to disable.

    Args:
        num_classes_mismatch: ``'error'`` (default: raise ``ValueError``) or ``'warn'`` (log a warning).

    Raises:
        ValueError: a head's ``num_classes`` differs from the number of classes (the message names the head
            and both numbers); or an unknown ``num_classes_mismatch``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_classes_mismatch: str = 'error') -> None:
        if num_classes_mismatch not in ('error', 'warn'):
            raise ValueError(f"DataCheckHook: num_classes_mismatch must be 'error' or 'warn', got "
                             f'{num_classes_mismatch!r}')
        self.num_classes_mismatch = num_classes_mismatch
        self._logged: set[int] = set()

    @staticmethod
    def built_datasets(runner: Any) -> list[tuple[str, Any]]:
        """``[(stage, dataset)]`` of the loops the runner has already built (none is built here)."""
        found = []
        for stage in ('train', 'val', 'test'):
            loop = getattr(runner, f'_{stage}_loop', None)
            dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
            if dataset is not None:
                found.append((stage, dataset))
        return found

    def before_run(self, runner: Any) -> None:
        datasets = self.built_datasets(runner)
        logged = getattr(runner, 'has_logged_warning', None)  # what the Runner logged while building the data
        for stage, dataset in datasets:
            for leaf in _leaves(dataset):
                lines = getattr(leaf, 'data_warnings', None)
                if lines and id(leaf) not in self._logged:
                    self._logged.add(id(leaf))
                    for line in lines:
                        if logged is None or not logged(line):
                            log_to_files(runner.logger, logging.WARNING, f'{stage} data: {line}')
        classes = next((d.metainfo.get('classes') for _, d in datasets
                        if isinstance(getattr(d, 'metainfo', None), dict) and d.metainfo.get('classes')), None)
        if not classes:
            return
        model = runner.model
        model = getattr(model, 'module', model)  # DDP / TTA wrappers
        problems = check_num_classes(model, classes)
        if not problems:
            return
        message = '; '.join(p.message for p in problems)
        if self.num_classes_mismatch == 'error':
            runner.logger.error(f'the model does not fit the data: {message}')
            raise ValueError(f'the model does not fit the data: {message}')
        runner.logger.warning(f'the model does not fit the data: {message}')

