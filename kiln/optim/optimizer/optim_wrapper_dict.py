"""``OptimWrapperDict``: several named optimizer wrappers (e.g. generator / discriminator)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from torch import nn

from kiln.registry import OPTIM_WRAPPERS

from .optim_wrapper import OptimWrapper


@OPTIM_WRAPPERS.register_module()
class OptimWrapperDict(OptimWrapper):
    """A dict of ``OptimWrapper`` s. The model's ``train_step`` picks the wrapper it needs
    (``optim_wrapper['generator'].update_params(loss)``); calling ``update_params`` / ``step`` /
    ``backward`` / ``zero_grad`` on the dict itself is an error.

    ``get_lr`` / ``get_momentum`` return ``{'<name>.lr': [...]}``; ``state_dict`` is ``{name: state}``.

    Raises:
        TypeError: a value is not an ``OptimWrapper``.
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:
        for name, w in optim_wrappers.items():
            if not isinstance(w, OptimWrapper):
                raise TypeError(f'OptimWrapperDict: {name!r} must be an OptimWrapper, got {type(w).__name__}')
        self.optim_wrappers = dict(optim_wrappers)

    def _not_here(self, what: str) -> None:
        raise NotImplementedError(f'OptimWrapperDict.{what}: call it on one wrapper, e.g. '
                                  f'optim_wrapper[{next(iter(self.optim_wrappers), "name")!r}].{what}(...)')

    def update_params(self, *args: Any, **kwargs: Any) -> None:
        self._not_here('update_params')

    def backward(self, *args: Any, **kwargs: Any) -> None:
        self._not_here('backward')

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._not_here('step')

    def zero_grad(self, *args: Any, **kwargs: Any) -> None:
        self._not_here('zero_grad')

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        self._not_here('optim_context')
        yield

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        for w in self.optim_wrappers.values():
            w.initialize_count_status(model, init_counts, max_counts)

    @property
    def param_groups(self) -> dict[str, list[dict]]:  # type: ignore[override]
        return {k: w.param_groups for k, w in self.optim_wrappers.items()}

    @property
    def last_grad_norm(self) -> dict:  # type: ignore[override]
        return {k: w.last_grad_norm for k, w in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        return {f'{k}.lr': w.get_lr()['lr'] for k, w in self.optim_wrappers.items()}

    def get_momentum(self) -> dict[str, list[float]]:
        return {f'{k}.momentum': w.get_momentum()['momentum'] for k, w in self.optim_wrappers.items()}

    def state_dict(self) -> dict:
        return {k: w.state_dict() for k, w in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        for k, state in state_dict.items():
            if k not in self.optim_wrappers:
                raise KeyError(f'OptimWrapperDict.load_state_dict: no wrapper named {k!r} '
                               f'(have {list(self.optim_wrappers)})')
            self.optim_wrappers[k].load_state_dict(state)

    def __getitem__(self, key: str) -> OptimWrapper:
        return self.optim_wrappers[key]

    def __contains__(self, key: str) -> bool:
        return key in self.optim_wrappers

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def keys(self) -> Any:
        return self.optim_wrappers.keys()

    def values(self) -> Any:
        return self.optim_wrappers.values()

    def items(self) -> Any:
        return self.optim_wrappers.items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.optim_wrappers)

    def __repr__(self) -> str:
        return 'OptimWrapperDict(\n' + '\n'.join(f'  {k}: {w!r}' for k, w in self.items()) + '\n)'
