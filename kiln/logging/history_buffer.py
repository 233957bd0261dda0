"""HistoryBuffer: the history of one logged scalar, with window statistics.

Values may be Python numbers or one-element tensors. Tensors are stored as they are
(detached) so that logging a loss every iteration never forces a device sync; they are
converted to floats lazily, all pending ones at once (one ``.tolist()`` per device and
dtype), when a statistic, ``data`` or ``state_dict`` is asked for.
"""
from __future__ import annotations

import math
import numbers
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

__all__ = ['HistoryBuffer', 'materialize']


class HistoryBuffer:
    """History of a scalar and of how many samples each value stands for.

    ``update(value, count)`` records a value that is the *total* over ``count`` samples,
    so ``mean()`` is ``sum(values) / sum(counts)`` (MMEngine semantics; with the default
    ``count=1`` it is the plain average).

    Args:
        log_history: Initial values (numbers).
        count_history: Initial counts, same length as ``log_history``.
        max_length: Only the newest ``max_length`` entries are kept.

    Raises:
        ValueError: ``log_history`` and ``count_history`` differ in length, or
            ``max_length`` < 1.
    """

    _statistics_methods: dict[str, Callable[..., float]] = {}

    def __init__(self, log_history: Sequence[float] = (), count_history: Sequence[float] = (),
                 max_length: int = 1000000) -> None:
        if max_length < 1:
            raise ValueError(f'HistoryBuffer: max_length must be >= 1, got {max_length}')
        if len(log_history) != len(count_history):
            raise ValueError(f'HistoryBuffer: log_history ({len(log_history)} values) and '
                             f'count_history ({len(count_history)} values) differ in length')
        self.max_length = int(max_length)
        self._values: list[Any] = [float(v) for v in log_history]
        self._counts: list[float] = [_as_count(c) for c in count_history]
        self._pending: list[int] = []  # indices of self._values still holding tensors
        self._trim(force=True)

    # ------------------------------------------------------------------ updates
    def update(self, value: float | torch.Tensor, count: float = 1) -> None:
        """Append ``value`` (total over ``count`` samples).

        Args:
            value: A Python/numpy number or a one-element tensor (kept as a detached
                tensor, no device sync).
            count: Number of samples ``value`` stands for (> 0).

        Raises:
            TypeError: ``value`` is not a number or one-element tensor.
        """
        cls = type(value)
        if cls is float or cls is int:  # fast path: the per-iteration timings and learning rates
            self._values.append(float(value))
            self._counts.append(1 if count == 1 and type(count) is int else _as_count(count))
            if len(self._values) > self.max_length:
                self._trim()
            return
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise TypeError('HistoryBuffer.update: a tensor value must have exactly one '
                                f'element, got shape {tuple(value.shape)}')
            if value.dim():
                value = value.reshape(())
            if value.requires_grad:
                value = value.detach()
            self._pending.append(len(self._values))
            self._values.append(value)
        elif isinstance(value, numbers.Number) and not isinstance(value, complex):
            self._values.append(float(value))  # type: ignore[arg-type]
        else:
            raise TypeError('HistoryBuffer.update: value must be a number or a one-element '
                            f'tensor, got {type(value).__name__}')
        self._counts.append(1 if count == 1 and type(count) is int else _as_count(count))
        if len(self._values) > self.max_length:
            self._trim()

    def _trim(self, force: bool = False) -> None:
        # Amortised: let the lists grow to 2 * max_length before dropping the oldest half.
        n = len(self._values)
        if n <= self.max_length:
            return
        if force or n >= 2 * self.max_length:
            drop = n - self.max_length
            del self._values[:drop]
            del self._counts[:drop]
            self._pending = [i - drop for i in self._pending if i >= drop]

    def _materialize(self) -> None:
        if self._pending:
            materialize([self])

    # ------------------------------------------------------------------ views
    def _window(self, window_size: int | None) -> tuple[list[float], list[float]]:
        if self._pending:
            materialize([self])
        n = min(len(self._values), self.max_length)
        if window_size is not None:
            if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
                raise ValueError('HistoryBuffer: window_size must be a positive int or None, '
                                 f'got {window_size!r}')
            n = min(n, window_size)
        if n == 0:
            raise ValueError('HistoryBuffer is empty: call update() before asking for statistics')
        return self._values[-n:], self._counts[-n:]

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, counts)`` as float64 numpy arrays of shape (L,), oldest first."""
        self._materialize()
        n = min(len(self._values), self.max_length)
        start = len(self._values) - n
        return (np.asarray(self._values[start:], dtype=np.float64),
                np.asarray(self._counts[start:], dtype=np.float64))

    def __len__(self) -> int:
        return min(len(self._values), self.max_length)

    # ------------------------------------------------------------------ statistics
    @classmethod
    def register_statistics(cls, method: Callable[..., float]) -> Callable[..., float]:
        """Decorator adding a statistic method usable through ``statistics(name, ...)``."""
        cls._statistics_methods[method.__name__] = method
        setattr(cls, method.__name__, method)
        return method

    def statistics(self, method_name: str, *args: Any, **kwargs: Any) -> float:
        """Call the statistic ``method_name`` (``mean``, ``min``, ``max``, ``current`` or
        one added by :meth:`register_statistics`).

        Raises:
            KeyError: Unknown method name.
        """
        if method_name not in self._statistics_methods:
            raise KeyError(f'HistoryBuffer: unknown statistic {method_name!r}; available: '
                           f'{sorted(self._statistics_methods)}')
        return self._statistics_methods[method_name](self, *args, **kwargs)

    def mean(self, window_size: int | None = None) -> float:
        """``sum(values) / sum(counts)`` over the newest ``window_size`` entries (all if None).

        Raises:
            ValueError: Empty buffer or invalid ``window_size``.
        """
        if type(window_size) is int and window_size > 0 and not self._pending and self._values:
            # the log line's case (a valid int window, nothing pending): slice without _window's checks
            n = min(window_size, self.max_length)
            return math.fsum(self._values[-n:]) / math.fsum(self._counts[-n:])
        values, counts = self._window(window_size)
        return math.fsum(values) / math.fsum(counts)

    def min(self, window_size: int | None = None) -> float:
        """Smallest value among the newest ``window_size`` entries (all if None)."""
        return min(self._window(window_size)[0])

    def max(self, window_size: int | None = None) -> float:
        """Largest value among the newest ``window_size`` entries (all if None)."""
        return max(self._window(window_size)[0])

    def current(self) -> float:
        """The newest value.

        Raises:
            ValueError: Empty buffer.
        """
        if self._values and not self._pending:
            return self._values[-1]
        return self._window(1)[0][-1]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain-Python state: ``dict(log_history=[float], count_history=[float], max_length=int)``."""
        values, counts = self.data
        return dict(log_history=values.tolist(), count_history=counts.tolist(),
                    max_length=self.max_length)

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict` output (replaces the current history)."""
        self.max_length = int(state_dict.get('max_length', self.max_length))
        values, counts = state_dict['log_history'], state_dict['count_history']
        if len(values) != len(counts):
            raise ValueError('HistoryBuffer.load_state_dict: log_history and count_history '
                             'differ in length')
        self._values = [float(v) for v in values]
        self._counts = [_as_count(c) for c in counts]
        self._pending = []
        self._trim(force=True)

    def __repr__(self) -> str:
        return f'HistoryBuffer(len={len(self)}, max_length={self.max_length})'


for _name in ('mean', 'min', 'max', 'current'):
    HistoryBuffer._statistics_methods[_name] = getattr(HistoryBuffer, _name)


def _as_count(count: Any) -> float:
    if isinstance(count, torch.Tensor):
        raise TypeError('HistoryBuffer: count must be a Python number, got a tensor')
    if not isinstance(count, numbers.Real):
        raise TypeError(f'HistoryBuffer: count must be a number, got {type(count).__name__}')
    if count <= 0:
        raise ValueError(f'HistoryBuffer: count must be > 0, got {count!r}')
    return int(count) if float(count).is_integer() else float(count)


def materialize(buffers: Iterable[HistoryBuffer]) -> None:
    """Convert every pending tensor value of ``buffers`` to a float.

    All pending tensors of all buffers are stacked per (device, dtype) and read back
    with a single ``.tolist()`` each, so logging N loss terms costs one device sync,
    not N. CPU tensors (nothing to sync) are read one by one with ``item()``, which is cheaper.
    """
    groups: dict[tuple, list[tuple[HistoryBuffer, int]]] = defaultdict(list)
    for buf in buffers:
        pending = buf._pending
        if not pending:
            continue
        values = buf._values
        for idx in pending:
            t = values[idx]
            if t.is_cpu:  # no device to sync with: one ``item()`` is cheaper than stacking
                values[idx] = float(t.item())
            else:
                groups[(t.device, t.dtype)].append((buf, idx))
        buf._pending = []
    for entries in groups.values():
        stacked = torch.stack([buf._values[idx] for buf, idx in entries])
        if stacked.dtype == torch.bool:
            stacked = stacked.to(torch.int64)
        for (buf, idx), v in zip(entries, stacked.tolist()):
            buf._values[idx] = float(v)
