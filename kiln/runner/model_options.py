"""Model-level options of a config: ``activation_checkpointing`` and ``compile`` (applied by the Runner)."""
from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, Sequence

from torch import nn

__all__ = ['apply_activation_checkpointing', 'compile_kwargs', 'compile_model', 'apply_model_options']


def apply_activation_checkpointing(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Wrap the ``forward`` of each named submodule with ``torch.utils.checkpoint.checkpoint(...,
    use_reentrant=False)``: in training its activations are not stored but recomputed during backward
    (less memory, one more forward of those modules). Gradients are unchanged, and buffers (BatchNorm running
    statistics) are updated once, not again by the recomputation. In ``no_grad`` / eval the plain forward runs.
    The modules must be deterministic between forward and recomputation (dropout is: torch restores the RNG).

    Args:
        model: the (unwrapped) model.
        names: dotted submodule names as in ``model.named_modules()``, e.g. ``['backbone.layer1',
            'backbone.layer2']``.

    Returns:
        The names wrapped (modules already wrapped are skipped).

    Raises:
        KeyError: a name is not a submodule of ``model`` (the message lists close names).
    """
    modules = dict(model.named_modules())
    wrapped = []
    for name in names:
        if name not in modules:
            import difflib
            close = difflib.get_close_matches(name, list(modules), n=5)
            raise KeyError(f'activation_checkpointing: {name!r} is not a submodule of '
                           f'{type(model).__name__}; close names: {close}')
        module = modules[name]
        if getattr(module, '_kiln_checkpointed', False):
            continue
        checkpointed = _checkpointed_forward(module, module.forward)
        module.forward = checkpointed
        module._kiln_checkpointed = True
        wrapped.append(name)
    return wrapped


class _KeepBuffers:
    """Recomputation context: the recomputed forward must not update buffers a second time (BatchNorm running
    statistics, ``num_batches_tracked``), so they are saved on entry and put back on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: list = []

    def __enter__(self) -> None:
        self.saved = [(b, b.detach().clone()) for b in self.module.buffers()]

    def __exit__(self, *exc: Any) -> None:
        import torch
        with torch.no_grad():
            for buf, value in self.saved:
                buf.copy_(value)
        self.saved = []


def _checkpointed_forward(module: nn.Module, forward: Any) -> Any:
    import torch
    import torch.utils.checkpoint as cp

    has_buffers = any(True for _ in module.buffers())

    def context_fn() -> tuple[Any, Any]:
        return contextlib.nullcontext(), _KeepBuffers(module)

    @functools.wraps(forward)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        if module.training and torch.is_grad_enabled():
            extra = dict(context_fn=context_fn) if has_buffers else {}
            return cp.checkpoint(forward, *args, use_reentrant=False, **extra, **kwargs)
        return forward(*args, **kwargs)

    return checkpointed


def compile_kwargs(cfg: Any) -> dict | None:
    """Keyword arguments for ``torch.compile`` from the config's ``compile`` value: False/None -> None (off),
    True -> ``{'backend': 'inductor'}`` (torch's default backend, made explicit so the log says which), a
    dict -> a copy of it with ``backend`` defaulting to ``'inductor'`` (e.g. ``dict(mode='max-autotune')``;
    ``dict(backend='eager')`` or ``'aot_eager'`` skip code generation, handy to debug on CPU).

    Raises:
        TypeError: any other value.
    """
    if cfg is None or cfg is False:
        return None
    if cfg is True:
        cfg = {}
    if isinstance(cfg, dict):
        return dict(cfg, backend=cfg.get('backend') or 'inductor')
    raise TypeError(f'compile must be True/False or a dict of torch.compile arguments, got {cfg!r}')


def compile_model(model: nn.Module, kwargs: dict) -> nn.Module:
    """Compile ``model`` in place with ``nn.Module.compile(**kwargs)``: its ``__call__`` (so ``forward`` in
    every mode, as ``train_step`` / ``val_step`` call ``self(...)``) goes through ``torch.compile``; the module
    object, its parameters and ``state_dict`` keys stay the same. Returns ``model``."""
    model.compile(**kwargs)
    model._kiln_compile_kwargs = dict(kwargs)
    return model


def apply_model_options(model: nn.Module, cfg: Any, logger: logging.Logger | None = None) -> nn.Module:
    """Apply ``cfg.activation_checkpointing`` (list of submodule names) and then ``cfg.compile`` to the
    unwrapped ``model`` (before DDP wrapping); returns ``model``."""
    names = cfg.get('activation_checkpointing') if cfg is not None else None
    if names:
        done = apply_activation_checkpointing(model, [names] if isinstance(names, str) else list(names))
        if logger is not None and done:
            logger.info(f'activation checkpointing on: {", ".join(done)}')
    kwargs = compile_kwargs(cfg.get('compile') if cfg is not None else None)
    if kwargs is not None:
        compile_model(model, kwargs)
        if logger is not None:
            logger.info(f'model compiled with torch.compile({", ".join(f"{k}={v!r}" for k, v in kwargs.items())})')
    return model
