"""``BaseTTAModel``: test-time augmentation, i.e. predict every augmented view and merge the predictions."""
from __future__ import annotations

import copy
from abc import abstractmethod
from typing import Any

from torch import nn

from kiln.registry import MODELS

from .base_model import BaseModel


class BaseTTAModel(BaseModel):
    """Run the wrapped model on each augmented view of a batch and merge the per-view predictions.

    The test pipeline (e.g. ``TestTimeAug``) turns one sample into ``dict(inputs=[view_0, ..., view_{A-1}],
    data_samples=[ds_0, ..., ds_{A-1}])``; ``pseudo_collate`` then gives a batch whose values are lists over
    the ``A`` views of per-view batches: ``data['inputs'][a]`` holds view ``a`` of every image.
    ``test_step`` calls ``module.test_step`` once per view (so the module's own data preprocessor runs) and
    then ``merge_preds`` with the predictions regrouped per image.

    Subclasses implement ``merge_preds(data_samples_list)``: ``data_samples_list[i]`` is the sequence of the
    ``A`` predicted data samples of image ``i`` (one per view, in view order); return one merged data sample
    per image. MMDetection's ``DetTTAModel`` is such a subclass.

    Args:
        module: the model (an ``nn.Module`` with ``test_step``) or its config dict (built from ``MODELS``).
        data_preprocessor: set as the module config's ``data_preprocessor`` when ``module`` is a dict and has
            none. The TTA model itself uses a plain ``BaseDataPreprocessor``.

    Raises:
        TypeError: ``module`` is neither an ``nn.Module`` nor a dict; a batch is not a dict / list / tuple.
        ValueError: the views of a batch have different counts per key.
    """

    def __init__(self, module: dict | nn.Module, data_preprocessor: dict | nn.Module | None = None) -> None:
        super().__init__()
        if isinstance(module, nn.Module):
            self.module = module
        elif isinstance(module, dict):
            module = copy.deepcopy(dict(module))
            if data_preprocessor is not None:
                module.setdefault('data_preprocessor', data_preprocessor)
            self.module = MODELS.build(module)
        else:
            raise TypeError(f'{type(self).__name__}: module must be an nn.Module or a config dict, '
                            f'got {type(module).__name__}')

    @abstractmethod
    def merge_preds(self, data_samples_list: list) -> list:
        """Merge predictions: ``data_samples_list[i][a]`` = prediction of view ``a`` of image ``i``; return a
        list with one merged prediction per image."""

    def test_step(self, data: dict | tuple | list) -> list:
        """Predict every view with ``module.test_step`` and return ``merge_preds`` of the regrouped results."""
        if isinstance(data, dict):
            counts = {k: len(v) for k, v in data.items()}
            if len(set(counts.values())) != 1:
                raise ValueError(f'{type(self).__name__}.test_step: every key must hold one entry per view, '
                                 f'got lengths {counts}')
            num_views = next(iter(counts.values()))
            views: list[Any] = [{k: v[a] for k, v in data.items()} for a in range(num_views)]
        elif isinstance(data, (list, tuple)):
            num_views = len(data[0])
            views = [[item[a] for item in data] for a in range(num_views)]
        else:
            raise TypeError(f'{type(self).__name__}.test_step: data must be a dict, list or tuple, '
                            f'got {type(data).__name__}')
        per_view = [self.module.test_step(view) for view in views]
        return self.merge_preds([list(preds) for preds in zip(*per_view)])

    def val_step(self, data: dict | tuple | list) -> list:
        """Same as ``test_step``."""
        return self.test_step(data)

    def forward(self, inputs: Any, data_samples: list | None = None, mode: str = 'tensor') -> Any:
        """Not used: TTA runs through ``test_step``."""
        raise NotImplementedError(f'{type(self).__name__} runs through test_step(), not forward()')
