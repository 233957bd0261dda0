"""``MultiOptimWrapperConstructor``: one optimizer wrapper per named child module (GANs, multi-part models)."""
from __future__ import annotations

from typing import Any

from torch import nn

from kiln.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .default_constructor import DefaultOptimWrapperConstructor
from .optim_wrapper_dict import OptimWrapperDict


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one wrapper per child module named in the config.

    Config (MMEngine's form)::

        optim_wrapper = dict(
            constructor='MultiOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4),
                           paramwise_cfg=dict(norm_decay_mult=0.0)),
            discriminator=dict(type='AmpOptimWrapper', optimizer=dict(type='Adam', lr=4e-4)))

    Each key names an attribute of the model (``model.generator``); its section is built by
    ``DefaultOptimWrapperConstructor`` on that child alone, with the section's own ``paramwise_cfg``.

    Args:
        optim_wrapper_cfg: ``{child name: optim_wrapper section}``.
        paramwise_cfg: must be None: give ``paramwise_cfg`` inside each section.

    Raises:
        TypeError: ``optim_wrapper_cfg`` or a section is not a dict.
        ValueError: a top-level ``paramwise_cfg`` was given, or the config names no child.
        AttributeError: (on call) the model has no child of a configured name; the message lists its children.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(f'MultiOptimWrapperConstructor: optim_wrapper_cfg must be a dict, '
                            f'got {type(optim_wrapper_cfg).__name__}')
        if paramwise_cfg is not None:
            raise ValueError('MultiOptimWrapperConstructor: set paramwise_cfg inside each child section '
                             '(optim_wrapper.<child>.paramwise_cfg), not at the top level')
        if not optim_wrapper_cfg:
            raise ValueError('MultiOptimWrapperConstructor: optim_wrapper names no child module, e.g. '
                             "generator=dict(optimizer=dict(type='Adam', lr=1e-4))")
        self.constructors: dict[str, DefaultOptimWrapperConstructor] = {}
        for name, section in optim_wrapper_cfg.items():
            if not isinstance(section, dict):
                raise TypeError(f'MultiOptimWrapperConstructor: optim_wrapper.{name} must be a dict, '
                                f'got {type(section).__name__}')
            section = dict(section)
            child_paramwise = section.pop('paramwise_cfg', None)
            self.constructors[name] = DefaultOptimWrapperConstructor(section, child_paramwise)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """Wrappers for ``model.<name>`` of every configured name (DDP/FSDP ``.module`` is unwrapped)."""
        while hasattr(model, 'module') and isinstance(model.module, nn.Module):
            model = model.module
        wrappers: dict[str, Any] = {}
        for name, constructor in self.constructors.items():
            child = getattr(model, name, None)
            if not isinstance(child, nn.Module):
                children = [n for n, _ in model.named_children()]
                raise AttributeError(f'MultiOptimWrapperConstructor: the model ({type(model).__name__}) has no '
                                     f'child module {name!r}; its children are {children}')
            wrappers[name] = constructor(child)
        return OptimWrapperDict(**wrappers)
