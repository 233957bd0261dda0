"""AimVisBackend: log a run to an Aim repository (MMEngine's ``AimVisBackend`` arguments)."""
from __future__ import annotations

import logging
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
    * ``close``: ``run.close()``, then adds the run to the repository's index (what ``aim up`` and
      ``aim storage reindex`` do), so that ``aim.Repo(path).iter_runs()`` and queries find it at once.

    Why the index step: Aim (3.17 and later) writes each run into its own chunk database
    (``.aim/meta/chunks/<hash>``) and readers list runs from the index database (``.aim/meta/index``) only,
    which Aim fills from a background indexer that runs inside ``aim up`` / ``aim server``. Without it a closed
    run stays invisible to ``Repo.iter_runs()`` until ``aim up`` is started. If the index is locked by another
    process (a running ``aim up``), that process indexes the run itself and only a warning is logged.

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
        if self._run is None:
            return
        run, self._run = self._run, None
        repo, run_hash = run.repo, run.hash
        run.close()
        from aim.sdk.index_manager import RepoIndexManager
        try:
            RepoIndexManager.get_index_manager(repo).index(run_hash)
        except Exception as e:  # e.g. the index is locked by a running `aim up`, which indexes the run itself
            from kiln.logging import print_log
            print_log(f'AimVisBackend: could not index run {run_hash} in {repo.path} ({e!r}); '
                      '`aim up` or `aim storage reindex` will index it', level=logging.WARNING)
