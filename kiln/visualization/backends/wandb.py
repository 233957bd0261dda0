"""WandbVisBackend: log a run to Weights & Biases (MMEngine's ``WandbVisBackend`` arguments)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from kiln.registry import VISBACKENDS

from ..vis_backend import BaseVisBackend, _check_image
from ._utils import config_dict, numeric_items, require

__all__ = ['WandbVisBackend']


@VISBACKENDS.register_module()
class WandbVisBackend(BaseVisBackend):
    """Record the run with ``wandb``: one W&B run per backend (a Runner's ``new_session()`` starts a new one).

    The run starts on the first write with ``wandb.init(**init_kwargs)``; ``dir`` defaults to ``save_dir`` and
    ``reinit`` to ``'create_new'`` (each backend has its own run object; nothing goes through the global
    ``wandb.run``). Offline: ``init_kwargs=dict(mode='offline')`` or the environment ``WANDB_MODE=offline``
    (``wandb sync`` uploads it later).

    * ``add_config``: ``run.config.update(config)``; with ``log_code_name`` also ``run.log_code(name=...)``;
    * ``add_scalar(s)``: numeric values via ``run.log(..., commit=commit)``. As in MMEngine, ``step`` is not
      passed to W&B (validation metrics logged by epoch would go back in W&B's step and be dropped); each
      training record carries its own ``iter`` / ``epoch`` keys;
    * ``add_image``: ``wandb.Image``;
    * ``add_graph(model)``: ``run.watch(model, **watch_kwargs)``;
    * ``close``: ``run.finish()``.

    Args:
        save_dir: Default ``dir`` of the W&B run files.
        init_kwargs: Keyword arguments of ``wandb.init`` (``project``, ``name``, ``mode``, ``tags``...).
        define_metric_cfg: ``{metric: summary}`` (e.g. ``{'coco/bbox_mAP': 'max'}``) or a list of
            ``run.define_metric`` keyword dicts.
        commit: ``commit`` of ``run.log``.
        log_code_name: Artifact name of the logged code (None: code is not logged).
        watch_kwargs: Keyword arguments of ``run.watch`` used by :meth:`add_graph`.

    Raises:
        ImportError: On first use when ``wandb`` is not installed (``pip install wandb``).
    """

    def __init__(self, save_dir: str | os.PathLike, init_kwargs: dict | None = None,
                 define_metric_cfg: dict | list | None = None, commit: bool = True,
                 log_code_name: str | None = None, watch_kwargs: dict | None = None) -> None:
        super().__init__(save_dir)
        self._init_kwargs = dict(init_kwargs or {})
        self._define_metric_cfg = define_metric_cfg
        self._commit = commit
        self._log_code_name = log_code_name
        self._watch_kwargs = dict(watch_kwargs or {})
        self._run: Any = None
        self._wandb: Any = None

    @property
    def experiment(self) -> Any:
        """The ``wandb`` run object (started on first access)."""
        if self._run is None:
            wandb = require('wandb', 'wandb', 'WandbVisBackend')
            kwargs = dict(self._init_kwargs)
            kwargs.setdefault('dir', str(self._save_dir))
            kwargs.setdefault('reinit', 'create_new')
            os.makedirs(kwargs['dir'], exist_ok=True)
            run = wandb.init(**kwargs)
            cfg = self._define_metric_cfg
            if isinstance(cfg, dict):
                for metric, summary in cfg.items():
                    run.define_metric(metric, summary=summary)
            elif cfg is not None:
                for item in cfg:
                    run.define_metric(**item)
            self._wandb, self._run = wandb, run
        return self._run

    def add_config(self, config: Any, **kwargs: Any) -> None:
        run = self.experiment
        run.config.update(config_dict(config), allow_val_change=True)
        if self._log_code_name is not None:
            run.log_code(name=self._log_code_name)

    def add_graph(self, model: Any, data_batch: Any = None, **kwargs: Any) -> None:
        """Watch ``model``'s gradients / parameters (``run.watch(model, **watch_kwargs)``)."""
        self.experiment.watch(model, **self._watch_kwargs)

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        run = self.experiment
        run.log({name: self._wandb.Image(_check_image(image, name))}, commit=self._commit)

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        """``run.log`` of the numeric items (``step`` and ``file_path`` are not used, see the class docs)."""
        self.experiment.log(dict(numeric_items(scalar_dict)), commit=self._commit)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
