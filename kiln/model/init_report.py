"""Record which initialiser set each parameter during ``BaseModule.init_weights`` (the init report).

A parameter counts as changed by an initialiser when its in-place version counter moved or its sum changed
(the latter catches writes through ``.data``). Nested scopes (an ``init_cfg`` entry inside a child's
``init_weights()``) win over the enclosing one, and a later writer wins over an earlier one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

NOT_INITIALISED = 'not initialised by init_cfg'


class InitReport:
    """Per-parameter record of the initialiser that last wrote it.

    Args:
        model: the top-level module whose ``named_parameters()`` names the report entries.
    """

    def __init__(self, model: nn.Module) -> None:
        self._params = dict(model.named_parameters(remove_duplicate=False))
        self._entries: dict[int, tuple[str, int]] = {}  # id(param) -> (label, tick)
        self._tick = 0

    @contextmanager
    def track(self, module: nn.Module, label: str) -> Iterator[None]:
        """Attribute parameters of ``module`` changed inside the block (and not claimed by a nested ``track``)
        to ``label``."""
        params = list(module.parameters())
        if not params:
            yield
            return
        versions = [p._version for p in params]
        sums = _sums(params)
        start = self._tick
        yield
        changed = _sums(params).ne(sums).tolist()  # one host sync per initialiser, only at init time
        self._tick += 1
        for p, v, diff in zip(params, versions, changed):
            if p._version == v and not diff:
                continue
            entry = self._entries.get(id(p))
            if entry is not None and entry[1] > start:
                continue  # claimed by a nested scope
            self._entries[id(p)] = (label, self._tick)

    def as_dict(self) -> dict[str, str]:
        """``{parameter name: initialiser description or 'not initialised by init_cfg'}``."""
        return {name: self._entries.get(id(p), (NOT_INITIALISED,))[0] for name, p in self._params.items()}

    def format(self) -> str:
        """One line per parameter: ``name - torch.Size([..]): <initialiser>``."""
        return '\n'.join(f'{name} - {tuple(p.shape)}: {self._entries.get(id(p), (NOT_INITIALISED,))[0]}'
                         for name, p in self._params.items())


def _sums(params: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([p.detach().sum(dtype=torch.float64) if p.is_floating_point()
                            else p.new_zeros((), dtype=torch.float64) for p in params])
