"""``Evaluator``: runs one or more metrics over the model's outputs."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from kiln.registry import EVALUATOR, METRICS
from kiln.structures import BaseDataElement

from .metric import BaseMetric


@EVALUATOR.register_module()
class Evaluator:
    """Feeds data samples to its metrics and merges their results.

    Args:
        metrics: a metric, a cfg dict built from ``METRICS``, or a list of those.

    Raises:
        TypeError: an item is neither a ``BaseMetric`` nor a dict (names its index).
        ValueError (from ``evaluate``): two metrics produce the same key (give them different prefixes).
    """

    def __init__(self, metrics: BaseMetric | dict | Sequence[BaseMetric | dict]) -> None:
        self._dataset_meta: dict | None = None
        self._logger = None
        if isinstance(metrics, (BaseMetric, dict)):
            metrics = [metrics]
        self.metrics: list[BaseMetric] = []
        for i, m in enumerate(metrics):
            if isinstance(m, dict):
                m = METRICS.build(m)
            if not isinstance(m, BaseMetric):
                raise TypeError(f'Evaluator: metrics[{i}] must be a BaseMetric or a config dict, '
                                f'got {type(m).__name__}')
            self.metrics.append(m)

    @property
    def dataset_meta(self) -> dict | None:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        """Set the dataset's metainfo on the evaluator and every metric."""
        self._dataset_meta = dataset_meta
        for m in self.metrics:
            m.dataset_meta = dataset_meta

    @property
    def logger(self):
        """The ``logging.Logger`` metrics write their reports to (``None`` prints them)."""
        return self._logger

    @logger.setter
    def logger(self, logger) -> None:
        """Set the logger on the evaluator and every metric (the Runner passes its own logger)."""
        self._logger = logger
        for m in self.metrics:
            m.logger = logger

    def process(self, data_samples: Sequence[BaseDataElement | dict], data_batch: Any = None) -> None:
        """Convert data samples to plain dicts (``to_dict()``) and pass them to every metric's ``process``."""
        samples = [s.to_dict() if isinstance(s, BaseDataElement) else s for s in data_samples]
        for m in self.metrics:
            m.process(data_batch, samples)

    def evaluate(self, size: int) -> dict[str, Any]:
        """Evaluate every metric on ``size`` samples and merge the (prefixed) results."""
        out: dict[str, Any] = {}
        for m in self.metrics:
            res = m.evaluate(size)
            for k in res:
                if k in out:
                    raise ValueError(f'Evaluator: several metrics produce {k!r}; give them different prefixes')
            out.update(res)
        return out

    def offline_evaluate(self, data_samples: Sequence, data: Sequence | None = None,
                         chunk_size: int = 1) -> dict[str, Any]:
        """Evaluate saved predictions (and optionally the matching dataset items) without a model.

        Args:
            data_samples: all predictions, in dataset order.
            data: the dataset items, same length (collated per chunk with ``pseudo_collate``), or ``None``.
            chunk_size: samples passed to ``process`` at a time.

        Raises:
            ValueError: ``data`` and ``data_samples`` differ in length, or ``chunk_size < 1``.
        """
        if chunk_size < 1:
            raise ValueError(f'offline_evaluate: chunk_size must be >= 1, got {chunk_size}')
        if data is not None and len(data) != len(data_samples):
            raise ValueError(f'offline_evaluate: {len(data_samples)} data_samples but {len(data)} data items')
        from kiln.dataset import pseudo_collate

        def chunks(seq: Sequence) -> Iterator[list]:
            for i in range(0, len(seq), chunk_size):
                yield list(seq[i:i + chunk_size])

        data_chunks = chunks(data) if data is not None else None
        size = 0
        for out_chunk in chunks(data_samples):
            batch = pseudo_collate(next(data_chunks)) if data_chunks is not None else None
            size += len(out_chunk)
            self.process(out_chunk, batch)
        return self.evaluate(size)
