"""MessageHub: the scalars and runtime information of one run.

Each Runner owns one instance (``runner.message_hub``); there is no global registry of
hubs, so two runners in one process never share history.
"""
from __future__ import annotations

import numbers
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from .history_buffer import HistoryBuffer, materialize

__all__ = ['MessageHub']


class MessageHub:
    """Scalars (each a :class:`HistoryBuffer`) plus runtime info (any value, overwritten).

    Scalar keys carry their phase as a prefix: ``train/loss``, ``train/lr``,
    ``val/coco/bbox_mAP``, ``test/time``... Runtime info holds ``epoch``, ``iter``,
    ``eta``, ``dataset_meta`` and the like.

    Args:
        name: A label for messages and ``repr``.
        log_scalars: Initial scalars ``{key: HistoryBuffer}``.
        runtime_info: Initial runtime info.
        resumed_keys: ``{key: bool}``; keys mapped to False are left out of ``state_dict``.
    """

    def __init__(self, name: str = '', log_scalars: dict[str, HistoryBuffer] | None = None,
                 runtime_info: dict[str, Any] | None = None,
                 resumed_keys: dict[str, bool] | None = None) -> None:
        self.name = name
        self._log_scalars: OrderedDict[str, HistoryBuffer] = OrderedDict(log_scalars or {})
        for key, buf in self._log_scalars.items():
            if not isinstance(buf, HistoryBuffer):
                raise TypeError(f'MessageHub: log_scalars[{key!r}] must be a HistoryBuffer, '
                                f'got {type(buf).__name__}')
        self._runtime_info: OrderedDict[str, Any] = OrderedDict(runtime_info or {})
        self._resumed_keys: dict[str, bool] = dict(resumed_keys or {})
        for key in list(self._log_scalars) + list(self._runtime_info):
            self._resumed_keys.setdefault(key, True)

    @classmethod
    def get_current_instance(cls) -> 'MessageHub':
        """The message hub of the Runner running in this context (MMEngine's accessor, scoped to the running
        ``train()`` / ``val()`` / ``test()``; see :mod:`kiln.logging.current`).

        Raises:
            RuntimeError: No Runner is running.
        """
        from .current import current_runner
        return current_runner('MessageHub.get_current_instance()').message_hub

    # ------------------------------------------------------------------ scalars
    def update_scalar(self, key: str, value: float | torch.Tensor, count: float = 1,
                      resumed: bool = True) -> None:
        """Append ``value`` (a number or a one-element tensor, kept without device sync)
        to the scalar ``key``, creating its buffer on first use.

        Args:
            key: Prefixed name, e.g. ``'train/loss_cls'``.
            value: Total over ``count`` samples (see :class:`HistoryBuffer`).
            count: Number of samples ``value`` stands for.
            resumed: Whether the history is saved by :meth:`state_dict`.

        Raises:
            TypeError: ``value`` is not a number or one-element tensor.
        """
        buf = self._log_scalars.get(key)
        if buf is None:
            buf = self._log_scalars[key] = HistoryBuffer()
        cls = type(value)
        if (cls is float or (cls is torch.Tensor and value.ndim == 0 and not value.requires_grad)) \
                and count == 1 and type(count) is int and type(buf) is HistoryBuffer:
            # The values of every iteration (timings, learning rate: floats; loss terms: detached 0-dim
            # tensors): HistoryBuffer.update's float and tensor paths, inline. A tensor is kept as it is (no
            # device sync) and marked pending.
            values = buf._values
            if cls is not float:
                buf._pending.append(len(values))
            values.append(value)
            buf._counts.append(1)
            if len(values) > buf.max_length:
                buf._trim()
            self._resumed_keys[key] = resumed
            return
        try:
            buf.update(value, count)
        except (TypeError, ValueError) as e:
            raise type(e)(f'MessageHub.update_scalar({key!r}): {e}') from None
        self._resumed_keys[key] = resumed

    def update_scalars(self, log_dict: dict[str, Any], resumed: bool = True) -> None:
        """Update several scalars; a value may be ``dict(value=..., count=...)``."""
        if not isinstance(log_dict, dict):
            raise TypeError(f'MessageHub.update_scalars expects a dict, got {type(log_dict).__name__}')
        for key, value in log_dict.items():
            if isinstance(value, dict):
                if 'value' not in value:
                    raise KeyError(f'MessageHub.update_scalars: {key!r} is a dict without a "value" key')
                self.update_scalar(key, value['value'], value.get('count', 1), resumed)
            else:
                self.update_scalar(key, value, 1, resumed)

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of ``key``.

        Raises:
            KeyError: Unknown key (the message lists the known ones).
        """
        if key not in self._log_scalars:
            raise KeyError(f'MessageHub{self._label()}: no scalar {key!r}; known scalars: '
                           f'{list(self._log_scalars)}')
        return self._log_scalars[key]

    @property
    def log_scalars(self) -> OrderedDict[str, HistoryBuffer]:
        """All scalars, ``{key: HistoryBuffer}`` in insertion order (the live dict)."""
        return self._log_scalars

    # ------------------------------------------------------------------ runtime info
    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        """Set runtime info ``key`` to ``value`` (overwrites)."""
        self._runtime_info[key] = value
        self._resumed_keys[key] = resumed

    def update_info_dict(self, info_dict: dict[str, Any], resumed: bool = True) -> None:
        """Set several runtime info keys."""
        if not isinstance(info_dict, dict):
            raise TypeError(f'MessageHub.update_info_dict expects a dict, got {type(info_dict).__name__}')
        for key, value in info_dict.items():
            self.update_info(key, value, resumed)

    def get_info(self, key: str, default: Any = None) -> Any:
        """Runtime info ``key``, or ``default`` when it was never set."""
        return self._runtime_info.get(key, default)

    def pop_info(self, key: str, default: Any = None) -> Any:
        """Remove and return runtime info ``key`` (``default`` when absent)."""
        self._resumed_keys.pop(key, None)
        return self._runtime_info.pop(key, default)

    @property
    def runtime_info(self) -> OrderedDict[str, Any]:
        """All runtime info (the live dict)."""
        return self._runtime_info

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain-container state for checkpoints.

        Returns ``dict(log_scalars={key: HistoryBuffer.state_dict()}, runtime_info={...},
        resumed_keys={...})`` holding only keys with ``resumed=True``. Tensor and numpy
        values are converted to floats / lists (all pending scalar tensors in one sync);
        runtime-info values that are not plain data (e.g. arbitrary objects) are left out
        with a warning naming the key.
        """
        keep = [k for k, buf in self._log_scalars.items() if self._resumed_keys.get(k, True)]
        materialize(self._log_scalars[k] for k in keep)
        scalars = {k: self._log_scalars[k].state_dict() for k in keep}
        info = {}
        for key, value in self._runtime_info.items():
            if not self._resumed_keys.get(key, True):
                continue
            try:
                info[key] = _to_plain(value)
            except TypeError as e:
                warnings.warn(f'MessageHub.state_dict: runtime info {key!r} is not saved: {e}',
                              stacklevel=2)
        resumed = {k: True for k in list(scalars) + list(info)}
        return dict(log_scalars=scalars, runtime_info=info, resumed_keys=resumed)

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore scalars and runtime info saved by :meth:`state_dict` (merged in).

        Raises:
            KeyError: ``state_dict`` lacks ``log_scalars`` or ``runtime_info``.
        """
        for part in ('log_scalars', 'runtime_info'):
            if part not in state_dict:
                raise KeyError(f'MessageHub.load_state_dict: missing key {part!r} '
                               f'(got keys {list(state_dict)})')
        for key, buf_state in state_dict['log_scalars'].items():
            buf = HistoryBuffer()
            buf.load_state_dict(buf_state)
            self._log_scalars[key] = buf
            self._resumed_keys[key] = True
        for key, value in state_dict['runtime_info'].items():
            self._runtime_info[key] = value
            self._resumed_keys[key] = True

    def _label(self) -> str:
        return f'({self.name!r})' if self.name else ''

    def __repr__(self) -> str:
        return (f'MessageHub(name={self.name!r}, scalars={list(self._log_scalars)}, '
                f'info={list(self._runtime_info)})')


def _to_plain(value: Any, path: str = '') -> Any:
    """Convert tensors/numpy to Python numbers and lists; raise TypeError on other objects."""
    if value is None or type(value) in (bool, str, int, float):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.dim() == 0 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) not in (str, int, float, bool) and k is not None:
                raise TypeError(f'{path or "value"} has a key of type {type(k).__name__}')
            out[k] = _to_plain(v, f'{path}.{k}' if path else str(k))
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_to_plain(v, f'{path}[{i}]') for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    where = f' at {path}' if path else ''
    raise TypeError(f'{type(value).__name__} value{where} is not plain data '
                    '(only numbers, str, None, tensors, numpy and containers of them)')
