"""ClearMLVisBackend: log a run as a ClearML task (MMEngine's ``ClearMLVisBackend`` arguments)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kiln.registry import VISBACKENDS

from ..vis_backend import BaseVisBackend, _check_image
from ._utils import artifact_files, config_dict, flatten_config, numeric_items, require

__all__ = ['ClearMLVisBackend']

_UNSET = object()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, '').strip().lower() in ('1', 'true', 'yes', 'on')


@VISBACKENDS.register_module()
class ClearMLVisBackend(BaseVisBackend):
    """Record the run as a ClearML task (``clearml.Task.init(**init_kwargs)`` on the first write).

    Without a ClearML server set ``CLEARML_OFFLINE_MODE=1`` (or call ``clearml.Task.set_offline(True)``; ClearML
    itself reads the variable only when it is imported, this backend also when its task starts): the
    session is written under ClearML's cache directory (``CLEARML_CACHE_DIR``, default ``~/.clearml/cache``),
    ``offline/<task id>/`` with ``metrics.jsonl``, and can be imported into a server later
    (``Task.import_offline_session``). ClearML allows one running task per process, so two runners running at
    the same time cannot both use this backend; a runner's ``new_session()`` closes the task and starts a new one.

    * ``init_kwargs`` defaults: ``project_name='kiln'``, ``task_name=<run directory name>``,
      ``reuse_last_task_id=False`` and no automatic framework / argparse / stream / resource hooks;
    * ``add_config``: the flattened config as the task's hyper-parameters and the config dict as its
      ``config`` configuration object;
    * ``add_scalar(s)``: ``report_scalar(title=name, series=name, value, iteration=step)``;
    * ``add_image``: ``report_image``;
    * ``close``: uploads the run files ending with ``artifact_suffix`` (task artifacts), closes the task.

    Reporting thread, not subprocess: by default ClearML on Linux forks a reporting subprocess
    (``sdk.development.report_use_subprocess``) and ``Task.close()`` then waits for it in 1 s polling steps
    (measured here: ``Task.init`` 5.7 s and ``close()`` 11 s for an offline session of 50 steps, and a fork from a
    process holding data-loader workers and torch threads can stall far longer). This backend reports from a
    thread of the training process instead (``report_in_subprocess=False``: 0.9 s and 0.7 s for the same
    session); ``report_in_subprocess=None`` keeps ClearML's configured behaviour.

    Args:
        save_dir: The run's vis directory (its parent is searched for artifacts).
        init_kwargs: Keyword arguments of ``clearml.Task.init``.
        artifact_suffix: File name endings uploaded at close.
        report_in_subprocess: Send reports from ClearML's reporting subprocess (True), from a thread (False,
            default) or as ClearML's configuration says (None). Applies to the ClearML task of this backend
            (ClearML runs one task per process); the previous setting is restored at :meth:`close`.

    Raises:
        ImportError: On first use when ``clearml`` is not installed (``pip install clearml``).
    """

    def __init__(self, save_dir: str | os.PathLike, init_kwargs: dict | None = None,
                 artifact_suffix: tuple[str, ...] | str = ('.py', '.pth'),
                 report_in_subprocess: bool | None = False) -> None:
        super().__init__(save_dir)
        self._init_kwargs = dict(init_kwargs or {})
        self._artifact_suffix = (artifact_suffix,) if isinstance(artifact_suffix, str) else tuple(artifact_suffix)
        self._report_in_subprocess = report_in_subprocess
        self._saved_report_mode: Any = None
        self._task: Any = None

    @property
    def experiment(self) -> Any:
        """The ``clearml.Task`` (initialised on first access)."""
        if self._task is None:
            clearml = require('clearml', 'clearml', 'ClearMLVisBackend')
            kwargs = dict(project_name='kiln', task_name=self._save_dir.resolve().parent.name,
                          reuse_last_task_id=False, auto_connect_frameworks=False, auto_connect_arg_parser=False,
                          auto_connect_streams=False, auto_resource_monitoring=False)
            kwargs.update(self._init_kwargs)
            if _env_flag('CLEARML_OFFLINE_MODE') and not clearml.Task.is_offline():
                # ClearML reads CLEARML_OFFLINE_MODE once, when it is imported: honour it when set later too
                clearml.Task.set_offline(True)
            if self._report_in_subprocess is not None:
                # ClearML reads this class attribute (its config key development.report_use_subprocess) when a
                # task starts its reporters and when it closes; kept until close(), then restored
                self._saved_report_mode = clearml.Task.__dict__.get('_report_subprocess_enabled', _UNSET)
                clearml.Task._report_subprocess_enabled = bool(self._report_in_subprocess)
            self._task = clearml.Task.init(**kwargs)
        return self._task

    def add_config(self, config: Any, **kwargs: Any) -> None:
        task = self.experiment
        task.connect(flatten_config(config), name='config')
        task.connect_configuration(config_dict(config), name='config')

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        self.experiment.get_logger().report_image(title=name, series=name, iteration=int(step),
                                                  image=_check_image(image, name))

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        logger = self.experiment.get_logger()
        for key, value in numeric_items(scalar_dict):
            logger.report_scalar(title=key, series=key, value=value, iteration=int(step))

    def close(self) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        run_dir = self._save_dir.resolve().parent
        for path in artifact_files(run_dir, self._artifact_suffix, exclude=('mlruns', 'wandb', 'dvclive', '.aim')):
            task.upload_artifact(name=Path(path).name, artifact_object=str(path), wait_on_upload=True)
        try:
            task.close()
        finally:
            if self._saved_report_mode is not None:
                import clearml
                if self._saved_report_mode is _UNSET:
                    del clearml.Task._report_subprocess_enabled
                else:
                    clearml.Task._report_subprocess_enabled = self._saved_report_mode
                self._saved_report_mode = None
