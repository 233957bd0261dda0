"""DVCLiveVisBackend: log a run with DVCLive (MMEngine's ``DVCLiveVisBackend`` arguments)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kiln.registry import VISBACKENDS

from ..vis_backend import BaseVisBackend, _check_image, _config_text
from ._utils import artifact_files, flatten_config, numeric_items, require

__all__ = ['DVCLiveVisBackend']


@VISBACKENDS.register_module()
class DVCLiveVisBackend(BaseVisBackend):
    """Record the run with ``dvclive.Live`` (plain files; a DVC/git repository is optional).

    * the ``Live`` object starts on the first write with ``dir=<save_dir>/dvclive``, ``save_dvc_exp=False`` and
      ``dvcyaml=None`` unless ``init_kwargs`` says otherwise. Note that ``dvclive.Live`` itself runs ``dvc init``
      (and stages ``.dvc/``) in the git repository enclosing the current directory when it is not a DVC
      repository yet; run from outside a git repository, or from a DVC repository, to avoid that;
    * ``add_config``: the flattened config as params (``params.yaml``) and the config text as ``config.py``;
    * ``add_scalar(s)``: numeric values with ``live.step = step`` (``plots/metrics/<name>.tsv`` and the
      ``metrics.json`` summary);
    * ``add_image``: ``plots/images/<name>_<step>.png``;
    * ``close``: copies the run files ending with ``artifact_suffix`` into ``<dir>/artifacts`` (``log_artifact``,
      not cached) and ``live.end()``.

    Args:
        save_dir: Default parent of the DVCLive directory.
        artifact_suffix: File name endings of the run directory logged at close.
        init_kwargs: Keyword arguments of ``dvclive.Live``.

    Raises:
        ImportError: On first use when ``dvclive`` is not installed (``pip install dvclive``).
    """

    def __init__(self, save_dir: str | os.PathLike, artifact_suffix: tuple[str, ...] | str = ('.json', '.py'),
                 init_kwargs: dict | None = None) -> None:
        super().__init__(save_dir)
        self._artifact_suffix = (artifact_suffix,) if isinstance(artifact_suffix, str) else tuple(artifact_suffix)
        self._init_kwargs = dict(init_kwargs or {})
        self._live: Any = None

    @property
    def experiment(self) -> Any:
        """The ``dvclive.Live`` object (created on first access)."""
        if self._live is None:
            dvclive = require('dvclive', 'dvclive', 'DVCLiveVisBackend')
            kwargs = dict(self._init_kwargs)
            kwargs.setdefault('dir', str(self._save_dir / 'dvclive'))
            kwargs.setdefault('save_dvc_exp', False)
            kwargs.setdefault('dvcyaml', None)  # do not write a dvc.yaml into the enclosing repository
            self._live = dvclive.Live(**kwargs)
        return self._live

    def add_config(self, config: Any, **kwargs: Any) -> None:
        live = self.experiment
        live.log_params(flatten_config(config))
        Path(live.dir, 'config.py').write_text(_config_text(config), encoding='utf-8')

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        from PIL import Image
        self.experiment.log_image(f'{name}_{step}.png', Image.fromarray(_check_image(image, name)))

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        live = self.experiment
        live.step = int(step)
        for key, value in numeric_items(scalar_dict):
            live.log_metric(key, value)

    def close(self) -> None:
        if self._live is None:
            return
        live, self._live = self._live, None
        run_dir = self._save_dir.resolve().parent
        for path in artifact_files(run_dir, self._artifact_suffix, exclude=('dvclive', 'mlruns', 'wandb', '.aim')):
            live.log_artifact(str(path), cache=False, copy=True)
        live.end()
