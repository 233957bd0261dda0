"""``BaseMetric``: accumulate per-batch results, gather them across ranks and compute metrics once."""
from __future__ import annotations

import copy
import os
import os.path as osp
import pickle
import warnings
from abc import ABCMeta, abstractmethod
from typing import Any, Sequence

import torch

from kiln.registry import METRICS


def _to_cpu(data: Any) -> Any:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if hasattr(data, 'cpu') and hasattr(data, 'all_keys'):  # a BaseDataElement
        return data.cpu()
    if isinstance(data, dict):
        return {k: _to_cpu(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_to_cpu(v) for v in data)
    return data


class BaseMetric(metaclass=ABCMeta):
    """Base class of metrics.

    ``process(data_batch, data_samples)`` is called for every batch and appends whatever the metric needs to
    ``self.results`` (keep it small and on the CPU: it is pickled across ranks). ``evaluate(size)`` gathers the
    results of all ranks in dataset order (``kiln.dist.collect_results``, padding from the sampler removed),
    calls ``compute_metrics`` on rank 0, broadcasts the dict to every rank, prefixes the keys
    (``'coco/bbox_mAP'``) and clears ``self.results``.

    Args:
        collect_device: ``'cpu'`` or ``'gpu'``, device used to gather results across ranks.
        prefix: key prefix; defaults to the class attribute ``default_prefix``.
        collect_dir: kept for MMEngine config compatibility (results are gathered through
            ``torch.distributed`` objects, not a shared directory).
    """

    default_prefix: str | None = None

    def __init__(self, collect_device: str = 'cpu', prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        if collect_device not in ('cpu', 'gpu', 'cuda'):
            raise ValueError(f"{type(self).__name__}: collect_device must be 'cpu' or 'gpu', got {collect_device!r}")
        self._dataset_meta: dict | None = None
        self.collect_device = collect_device
        self.collect_dir = collect_dir
        self.results: list = []
        self.prefix = prefix or self.default_prefix
        # Where reports (tables, summaries) go: the Runner sets its own logger here; None prints.
        self.logger = None

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's ``metainfo`` (e.g. ``classes``), set by the Runner / Evaluator."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = copy.deepcopy(dataset_meta)

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Add the results of one batch to ``self.results``.

        Args:
            data_batch: the batch from the dataloader (may be ``None`` in offline evaluation).
            data_samples: the model's outputs, each converted to a plain dict with ``to_dict()``.
        """

    @abstractmethod
    def compute_metrics(self, results: list) -> dict[str, Any]:
        """Compute the metrics from the results of the whole dataset; keys without prefix."""

    def evaluate(self, size: int) -> dict[str, Any]:
        """Gather, compute (rank 0), broadcast, prefix and clear.

        Args:
            size: number of samples in the whole dataset (drops the sampler's padding duplicates).

        Returns:
            ``{f'{prefix}/{name}': value}`` (``{name: value}`` without prefix), identical on every rank.
        """
        from kiln.dist import broadcast_object_list, collect_results, is_main_process
        if len(self.results) == 0:
            warnings.warn(f'{type(self).__name__}.evaluate: self.results is empty; process() must append the '
                          'results of each batch to self.results (was the dataloader empty?)', stacklevel=2)
        results = collect_results(self.results, size, self.collect_device)
        if is_main_process():
            metrics = self.compute_metrics(_to_cpu(results))
            if self.prefix:
                metrics = {f'{self.prefix}/{k}': v for k, v in metrics.items()}
            box = [metrics]
        else:
            box = [None]
        broadcast_object_list(box)
        self.results.clear()
        return box[0]


@METRICS.register_module()
class DumpResults(BaseMetric):
    """Save the model's predictions (plain dicts, tensors on the CPU) to a pickle file; computes no metric.

    Args:
        out_file_path: path ending with ``.pkl`` or ``.pickle``.

    Raises:
        ValueError: the path has another extension.
    """

    def __init__(self, out_file_path: str, collect_device: str = 'cpu', collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        if not out_file_path.endswith(('.pkl', '.pickle')):
            raise ValueError(f'DumpResults: out_file_path must end with .pkl or .pickle, got {out_file_path!r}')
        self.out_file_path = out_file_path

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        self.results.extend(_to_cpu(list(data_samples)))

    def compute_metrics(self, results: list) -> dict:
        os.makedirs(osp.dirname(osp.abspath(self.out_file_path)), exist_ok=True)
        with open(self.out_file_path, 'wb') as f:
            pickle.dump(results, f)
        return {}
