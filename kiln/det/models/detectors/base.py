"""``BaseDetector``: ``forward(inputs, data_samples, mode)`` dispatch shared by all detectors (MMDetection 3.x)."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

from torch import Tensor

from kiln.model import BaseModel


class BaseDetector(BaseModel):
    """Detector base class.

    ``forward(inputs, data_samples=None, mode='tensor')`` with ``inputs`` float32 (N, 3, H, W) (normalised and
    padded by the data preprocessor) and ``data_samples`` a list of ``DetDataSample``:

    * ``mode='loss'``: :meth:`loss` -> dict of loss tensors;
    * ``mode='predict'``: :meth:`predict` -> the data samples with ``pred_instances`` added (boxes in the
      original image);
    * ``mode='tensor'``: :meth:`_forward` -> raw head outputs (tuple of per-level tensor lists).

    Raises:
        RuntimeError: unknown ``mode``.
    """

    def __init__(self, data_preprocessor: Any = None, init_cfg: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    @property
    def with_neck(self) -> bool:
        """Whether the detector has a neck."""
        return getattr(self, 'neck', None) is not None

    @property
    def with_bbox(self) -> bool:
        """Whether the detector has a box head."""
        return getattr(self, 'bbox_head', None) is not None or getattr(self, 'roi_head', None) is not None

    def forward(self, inputs: Tensor, data_samples: Sequence[Any] | None = None, mode: str = 'tensor') -> Any:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode {mode!r}: a detector supports "loss", "predict" and "tensor"')

    @abstractmethod
    def loss(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """Losses of a batch."""

    @abstractmethod
    def predict(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any], rescale: bool = True) -> list:
        """Predictions of a batch, stored in ``data_sample.pred_instances``."""

    @abstractmethod
    def _forward(self, batch_inputs: Tensor, batch_data_samples: Sequence[Any] | None = None) -> Any:
        """Raw network outputs."""

    @abstractmethod
    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        """Backbone (+ neck) features."""

    def add_pred_to_datasample(self, data_samples: Sequence[Any], results_list: Sequence[Any]) -> list:
        """Set ``pred_instances`` of each data sample and return the samples."""
        for sample, pred in zip(data_samples, results_list):
            sample.pred_instances = pred
        return list(data_samples)
