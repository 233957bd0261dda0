"""AimVisBackend: log a run to an Aim repository (MMEngine's ``AimVisBackend`` arguments)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from kiln.registry import VISBACKENDS

from ..vis_backend import BaseVisBackend, _check_image
from ._utils import config_dict, numeric_items, require

__all__ = ['AimVisBackend']


@VISBACKENDS.register_module()
class AimVisBackend(BaseVisBackend):
    """Record the run in a local Aim repository (``aim up`` shows it; no server needed to write).

    * ``aim.Run(**init_kwargs)`` on the first write; ``repo`` defaults to ``save_dir`` (the repository is
      ``<save_dir>/.aim``), system tracking and terminal capture are off unless ``init_kwargs`` turns them on;
    * ``add_config``: the config dict as the run's ``hparams``;
    * ``add_scalar(s)``: numeric values with ``run.track(value, name, step)``;
    * ``add_image``: ``aim.Image`` tracked at ``step``;
    * ``close``: ``run.close()``.

    Args:
        save_dir: Default repository directory.
        init_kwargs: Keyword arguments of ``aim.Run`` (``experiment``, ``repo``...).

    Raises:
        ImportError: On first use when ``aim`` is not installed (``pip install aim``).
    """

    def __init__(self, save_dir: str | os.PathLike, init_kwargs: dict | None = None) -> None:
        super().__init__(save_dir)
        self._init_kwargs = dict(init_kwargs or {})
        self._run: Any = None

    @property
    def experiment(self) -> Any:
        """The ``aim.Run`` (created on first access)."""
        if self._run is None:
            aim = require('aim', 'aim', 'AimVisBackend')
            kwargs = dict(self._init_kwargs)
            kwargs.setdefault('repo', str(self._save_dir))
            kwargs.setdefault('system_tracking_interval', None)
            kwargs.setdefault('capture_terminal_logs', False)
            kwargs.setdefault('log_system_params', False)
            os.makedirs(kwargs['repo'], exist_ok=True)
            self._run = aim.Run(**kwargs)
        return self._run

    def add_config(self, config: Any, **kwargs: Any) -> None:
        import json
        # Aim stores JSON-like values only: round-trip through JSON, non-JSON values as their repr
        self.experiment['hparams'] = json.loads(json.dumps(config_dict(config), default=repr))

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        from aim import Image
        self.experiment.track(Image(_check_image(image, name)), name=name, step=int(step))

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        run = self.experiment
        for key, value in numeric_items(scalar_dict):
            run.track(value, name=key, step=int(step))

    def close(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None
