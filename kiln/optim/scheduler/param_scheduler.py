"""Parameter schedulers with MMEngine's window semantics (``begin`` / ``end``) for any param-group value.

A scheduler acts on ``optimizer.param_groups[i][param_name]`` of a torch optimizer or an ``OptimWrapper``.
It is active for the steps ``begin <= step < end``, where ``step`` counts calls of ``step()`` (the constructor
makes the first call, for step 0). Inside the window ``last_step`` counts from 0, and values are computed in
"chainable" form from the current value (like ``torch.optim.lr_scheduler``), so schedulers can be combined,
e.g. a linear warm-up over iterations followed by a multi-step decay over epochs.

Window/torch correspondences (checked in the tests): ``LinearLR(start_factor=s, begin=0, end=n)`` ==
``torch LinearLR(start_factor=s, total_iters=n - 1)``; ``ConstantLR(factor=f, end=n)`` == torch
``ConstantLR(factor=f, total_iters=n - 1)``; ``PolyLR(end=n)`` == torch ``PolynomialLR(total_iters=n - 1)``;
``StepLR``, ``MultiStepLR``, ``ExponentialLR`` and ``CosineAnnealingLR(T_max)`` match torch step for step.

Reference: MMEngine ``mmengine.optim.scheduler`` and ``torch.optim.lr_scheduler`` (formulas), re-implemented.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from torch.optim import Optimizer

from kiln.registry import PARAM_SCHEDULERS

INF = int(1e9)

_logger = logging.getLogger(__name__)


class _ParamScheduler:
    """Base class: set ``param_groups[i][param_name]`` each ``step()`` inside ``[begin, end)``.

    Args:
        optimizer: ``torch.optim.Optimizer`` or ``OptimWrapper`` (anything with ``param_groups``).
        param_name: the param-group key to schedule (``'lr'``, ``'momentum'``, ``'weight_decay'`` ...).
        begin, end: window of steps (epochs if ``by_epoch`` else iterations) where the scheduler acts.
        last_step: ``-1`` for a fresh start; otherwise the index of the last step taken (resume without a state
            dict; the param groups must then already hold ``initial_<param_name>``).
        by_epoch: whether ``step()`` is called once per epoch (True) or per iteration (False).
        verbose: log every value change.

    Subclasses list their step-valued arguments in ``_STEP_ARGS`` so ``build_iter_from_epoch`` converts them.

    Raises:
        TypeError: ``optimizer`` has no ``param_groups``.
        ValueError: ``end <= begin`` or ``last_step < -1``.
        KeyError: a param group lacks ``param_name`` (or ``initial_<param_name>`` when resuming).
    """

    _STEP_ARGS: tuple[str, ...] = ()

    def __init__(self, optimizer: Any, param_name: str, begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False) -> None:
        if not isinstance(optimizer, Optimizer) and not hasattr(optimizer, 'param_groups'):
            raise TypeError(f'{type(self).__name__}: optimizer must be a torch Optimizer or an OptimWrapper, '
                            f'got {type(optimizer).__name__}')
        if end <= begin:
            raise ValueError(f'{type(self).__name__}: end must be larger than begin, got begin={begin}, end={end}')
        if not isinstance(last_step, int) or last_step < -1:
            raise ValueError(f'{type(self).__name__}: last_step must be an int >= -1, got {last_step!r}')
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        self.verbose = verbose
        initial_key = f'initial_{param_name}'
        for i, group in enumerate(optimizer.param_groups):
            if last_step == -1:
                if param_name not in group:
                    raise KeyError(f'{type(self).__name__}: param_groups[{i}] has no {param_name!r} '
                                   f'(keys: {sorted(k for k in group if k != "params")})')
                group.setdefault(initial_key, group[param_name])
            elif initial_key not in group:
                raise KeyError(f'{type(self).__name__}: param_groups[{i}] has no {initial_key!r}, needed to '
                               f'resume with last_step={last_step}')
        self.base_values = [group[initial_key] for group in optimizer.param_groups]
        self.last_step = last_step
        self._global_step = last_step
        self._last_value: list[float] = []
        self.step()

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, begin: int = 0, end: int = INF, by_epoch: bool = True,
                              epoch_length: int | None = None, **kwargs: Any) -> '_ParamScheduler':
        """Build an iteration-based scheduler from epoch-based arguments (``convert_to_iter_based=True``).

        ``begin``, ``end`` and the step-valued arguments (``step_size``, ``milestones``, ``T_max``) are
        multiplied by ``epoch_length`` (iterations per epoch) and ``by_epoch`` becomes False.

        Raises:
            ValueError: ``by_epoch`` is False or ``epoch_length`` is not a positive int.
        """
        if not by_epoch:
            raise ValueError(f'{cls.__name__}.build_iter_from_epoch: only by_epoch=True configs can be converted')
        if not isinstance(epoch_length, int) or epoch_length <= 0:
            raise ValueError(f'{cls.__name__}.build_iter_from_epoch: epoch_length must be a positive int, '
                             f'got {epoch_length!r}')
        for name in cls._STEP_ARGS:
            value = kwargs.get(name)
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                kwargs[name] = [int(v * epoch_length) for v in value]
            else:
                kwargs[name] = int(value * epoch_length)
        begin = int(begin * epoch_length)
        if end != INF:
            end = int(end * epoch_length)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)

    # ------------------------------------------------------------------ stepping
    def _get_value(self) -> list[float]:
        """Values for the current ``last_step`` (0 = first step in the window); chainable form."""
        raise NotImplementedError

    def _current(self) -> list[float]:
        return [group[self.param_name] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one step (epoch or iteration) and update the values if the step is inside the window."""
        self._global_step += 1
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups, self._get_value())):
                group[self.param_name] = value
                if self.verbose:
                    _logger.info('%s: %s of group %d set to %.4e', type(self).__name__, self.param_name, i, value)
        self._last_value = self._current()

    def get_last_value(self) -> list[float]:
        """The values of ``param_name`` of every param group after the last ``step()``."""
        return self._last_value

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Every attribute except the optimizer (plain Python values, loadable with ``weights_only=True``)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items() if k != 'optimizer'}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(param_name={self.param_name!r}, begin={self.begin}, end={self.end}, '
                f'by_epoch={self.by_epoch}, last_step={self.last_step})')


@PARAM_SCHEDULERS.register_module()
class ConstantParamScheduler(_ParamScheduler):
    """Multiply the value by ``factor`` (in [0, 1]) from ``begin`` until step ``end - 1``, where the original
    value is restored."""

    def __init__(self, optimizer: Any, param_name: str, factor: float = 1.0 / 3, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        if not 0 <= factor <= 1:
            raise ValueError(f'{type(self).__name__}: factor must be in [0, 1], got {factor}')
        self.factor = factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [v * self.factor for v in self._current()]
        if self.last_step == self.total_iters:
            return [v / self.factor if self.factor else b for v, b in zip(self._current(), self.base_values)]
        return self._current()


@PARAM_SCHEDULERS.register_module()
class LinearParamScheduler(_ParamScheduler):
    """Scale the value by a factor going linearly from ``start_factor`` (step ``begin``) to ``end_factor``
    (step ``end - 1``)."""

    def __init__(self, optimizer: Any, param_name: str, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f'{type(self).__name__}: start_factor must be in (0, 1], got {start_factor}')
        if not 0 <= end_factor <= 1:
            raise ValueError(f'{type(self).__name__}: end_factor must be in [0, 1], got {end_factor}')
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [v * self.start_factor for v in self._current()]
        if self.last_step > self.total_iters:
            return self._current()
        delta = self.end_factor - self.start_factor
        ratio = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        return [v * ratio for v in self._current()]


@PARAM_SCHEDULERS.register_module()
class StepParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` every ``step_size`` steps of the window."""

    _STEP_ARGS = ('step_size',)

    def __init__(self, optimizer: Any, param_name: str, step_size: int, gamma: float = 0.1, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        if int(step_size) < 1:
            raise ValueError(f'{type(self).__name__}: step_size must be >= 1, got {step_size}')
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current()
        return [v * self.gamma for v in self._current()]


@PARAM_SCHEDULERS.register_module()
class MultiStepParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` at each milestone (step index inside the window; repeats compound)."""

    _STEP_ARGS = ('milestones',)

    def __init__(self, optimizer: Any, param_name: str, milestones: Sequence[int], gamma: float = 0.1,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        counts: dict[int, int] = {}
        for m in milestones:
            counts[int(m)] = counts.get(int(m), 0) + 1
        self.milestones = counts
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        times = self.milestones.get(self.last_step, 0)
        if not times:
            return self._current()
        return [v * self.gamma ** times for v in self._current()]


@PARAM_SCHEDULERS.register_module()
class ExponentialParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` every step of the window (after the first)."""

    def __init__(self, optimizer: Any, param_name: str, gamma: float, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        return [v * self.gamma for v in self._current()]


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingParamScheduler(_ParamScheduler):
    """Cosine annealing from the initial value to ``eta_min`` over ``T_max`` steps (SGDR without restarts,
    Loshchilov & Hutter 2017): ``v_t = eta_min + (v_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    Args:
        T_max: half period in steps; default ``end - begin``.
        eta_min: minimum value (default 0), or ``eta_min_ratio``: minimum as a fraction of the initial value.
    """

    _STEP_ARGS = ('T_max',)

    def __init__(self, optimizer: Any, param_name: str, T_max: int | None = None, eta_min: float | None = None,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False, eta_min_ratio: float | None = None) -> None:
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError(f'{type(self).__name__}: give eta_min or eta_min_ratio, not both')
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.0
        self.T_max = T_max or (end - begin)
        if self.T_max >= INF:
            raise ValueError(f'{type(self).__name__}: set T_max or a finite end')
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _eta_min(self, base: float) -> float:
        return base * self.eta_min_ratio if self.eta_min_ratio is not None else self.eta_min

    def _get_value(self) -> list[float]:
        t, T = self.last_step, self.T_max
        if t == 0:
            return self._current()
        out = []
        for v, base in zip(self._current(), self.base_values):
            lo = self._eta_min(base)
            if (t - 1 - T) % (2 * T) == 0:
                out.append(v + (base - lo) * (1 - math.cos(math.pi / T)) / 2)
            else:
                out.append((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (v - lo) + lo)
        return out


@PARAM_SCHEDULERS.register_module()
class PolyParamScheduler(_ParamScheduler):
    """Polynomial decay to ``eta_min`` at step ``end - 1``: ``v_t = (v_0 - eta_min) * (1 - t / T)^power +
    eta_min`` with ``T = end - begin - 1``."""

    def __init__(self, optimizer: Any, param_name: str, eta_min: float = 0, power: float = 1.0, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        self.eta_min = eta_min
        self.power = power
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        factor = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(v - self.eta_min) * factor + self.eta_min for v in self._current()]
