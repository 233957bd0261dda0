"""MLflowVisBackend: log a run to MLflow (MMEngine's ``MLflowVisBackend`` arguments)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from kiln.registry import VISBACKENDS

from ..vis_backend import BaseVisBackend, _check_image, _config_text
from ._utils import artifact_files, config_dict, flatten_config, numeric_items, require

__all__ = ['MLflowVisBackend']


@VISBACKENDS.register_module()
class MLflowVisBackend(BaseVisBackend):
    """Record the run in MLflow, through an ``mlflow.tracking.MlflowClient`` of its own (no global active run,
    so two runners log to two runs).

    * one MLflow run per backend (a Runner's ``new_session()`` builds a new backend, hence a new run), in the
      experiment ``exp_name`` (created if missing), named ``run_name`` (default: the name of the run directory,
      i.e. the timestamp), with ``tags`` and ``params``;
    * ``add_config``: the flattened config (``model.backbone.depth`` ...) as params (only the top-level keys in
      ``tracked_config_keys`` when given) and the config text as the artifact ``config.py``;
    * ``add_scalar(s)``: numeric values as metrics at ``step`` (non-numeric values are skipped);
    * ``add_image``: the image as the artifact ``images/<name>_<step>.png``;
    * ``close``: uploads the run's files from the run directory (``save_dir``'s parent, e.g.
      ``work_dir/<timestamp>``) whose names end with ``artifact_suffix`` or ``.png`` (text log, ``scalars.json``,
      plots; the tracker store itself is skipped), the best checkpoints ``work_dir/best_*`` (``work_dir`` from
      the config, else the run directory's parent) under ``checkpoints/``, then ends the run.

    The ``mlflow`` package is imported when the run starts (first write).

    Args:
        save_dir: Where the local store goes: by default ``<save_dir>/mlruns/`` holds the SQLite store
            ``mlflow.db`` (``tracking_uri='sqlite:///<save_dir>/mlruns/mlflow.db'``; MLflow 3 refuses new file
            stores) and the ``artifacts/`` folder; ``mlflow ui --backend-store-uri <that uri>`` shows it.
        exp_name: Experiment name (default ``'Default'``).
        run_name: Run name (default: the run directory's name).
        tags: ``{name: value}`` run tags.
        params: ``{name: value}`` extra params logged at start.
        tracking_uri: Any MLflow tracking URI (``http://host:5000``, ``sqlite:////abs/path/mlflow.db``...).
        artifact_suffix: File name endings uploaded at close.
        tracked_config_keys: Top-level config keys logged as params (None: all).
        artifact_location: Artifact location of a newly created experiment (default for a SQLite store: the
            ``artifacts/`` folder beside the database; for a server: the server's default).

    Raises:
        ImportError: On first use when ``mlflow`` is not installed (``pip install mlflow``).
    """

    def __init__(self, save_dir: str | os.PathLike, exp_name: str | None = None, run_name: str | None = None,
                 tags: dict | None = None, params: dict | None = None, tracking_uri: str | None = None,
                 artifact_suffix: tuple[str, ...] | str = ('.json', '.log', '.py', 'yaml'),
                 tracked_config_keys: list[str] | None = None, artifact_location: str | None = None) -> None:
        super().__init__(save_dir)
        self._exp_name = exp_name or 'Default'
        self._run_name = run_name
        self._tags = dict(tags or {})
        self._params = dict(params or {})
        self._tracking_uri = tracking_uri
        self._artifact_suffix = (artifact_suffix,) if isinstance(artifact_suffix, str) else tuple(artifact_suffix)
        self._tracked_config_keys = tracked_config_keys
        self._artifact_location = artifact_location
        self._client: Any = None
        self._run_id: str | None = None
        self._work_dir: Path | None = None

    @property
    def experiment(self) -> Any:
        """The ``MlflowClient`` (the run starts on first access); the run id is :attr:`run_id`."""
        if self._client is None:
            self._start()
        return self._client

    @property
    def run_id(self) -> str | None:
        """The MLflow run id (None before the first write); kept after :meth:`close`."""
        return self._run_id

    def _start(self) -> None:
        tracking = require('mlflow.tracking', 'mlflow', 'MLflowVisBackend')
        uri, artifact_location = self._tracking_uri, self._artifact_location
        if uri is None:  # MLflow 3 keeps its file store read-mostly: a local SQLite store + artifact folder
            store = (self._save_dir / 'mlruns').resolve()
            store.mkdir(parents=True, exist_ok=True)
            uri = f'sqlite:///{store / "mlflow.db"}'
            artifact_location = artifact_location or (store / 'artifacts').as_uri()
        elif artifact_location is None and uri.startswith('sqlite:///'):  # beside the database, not in the cwd
            artifact_location = (Path(uri[len('sqlite:///'):]).resolve().parent / 'artifacts').as_uri()
        client = tracking.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(self._exp_name)
        exp_id = (experiment.experiment_id if experiment is not None
                  else client.create_experiment(self._exp_name, artifact_location=artifact_location))
        run_name = self._run_name or self._save_dir.resolve().parent.name
        run = client.create_run(exp_id, run_name=run_name, tags={k: str(v) for k, v in self._tags.items()})
        self._client, self._run_id = client, run.info.run_id
        if self._params:
            self._log_params(self._params)

    def _log_params(self, params: dict[str, Any]) -> None:
        self.experiment  # noqa: B018
        from mlflow.entities import Param
        items = [Param(str(k), str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.experiment.log_batch(self._run_id, params=items[i:i + 100])

    def add_config(self, config: Any, **kwargs: Any) -> None:
        work_dir = config_dict(config).get('work_dir') if config is not None else None
        if work_dir:
            self._work_dir = Path(work_dir)
        self._log_params(flatten_config(config, self._tracked_config_keys))
        self.experiment.log_text(self._run_id, _config_text(config), 'config.py')

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        self.experiment.log_image(self._run_id, _check_image(image, name), f'images/{name}_{step}.png')

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        """Log the numeric items as metrics at ``step`` in one batch (``file_path`` is ignored)."""
        client = self.experiment
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value in numeric_items(scalar_dict)]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(self._run_id, metrics=metrics[i:i + 1000])

    def close(self) -> None:
        """Upload the run's files and best checkpoints (see the class docs) and end the run."""
        if self._client is None:
            return
        client, run_id = self._client, self._run_id
        run_dir = self._save_dir.resolve().parent
        store = {'mlruns', 'wandb', 'dvclive', '.aim', 'vis_image'}  # tracker stores; vis images went as images
        for path in artifact_files(run_dir, self._artifact_suffix + ('.png',), exclude=tuple(store)):
            rel = path.parent.relative_to(run_dir).as_posix()
            client.log_artifact(run_id, str(path), None if rel == '.' else rel)
        work_dir = self._work_dir or run_dir.parent
        for path in sorted(Path(work_dir).glob('best_*')):
            if path.is_file():
                client.log_artifact(run_id, str(path), 'checkpoints')
        client.set_terminated(run_id)
        self._client = None
