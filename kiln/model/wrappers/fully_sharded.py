"""Fully sharded data parallel (FSDP2, ``torch.distributed.fsdp.fully_shard``) for kiln models.

Reference: PyTorch FSDP2 (``fully_shard``, ``torch.distributed.checkpoint.state_dict``); MMEngine's
``MMFullyShardedDataParallel`` for the interface (``train_step`` / ``val_step`` / ``test_step``).
"""
from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from kiln.registry import MODEL_WRAPPERS

__all__ = ['FullyShardedDataParallel']

_DTYPES = {'float32': torch.float32, 'fp32': torch.float32, 'float16': torch.float16, 'fp16': torch.float16,
           'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


def _dtype(value: Any, key: str) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if value not in _DTYPES:
        raise ValueError(f'FSDP mp_policy.{key}: expected one of {sorted(_DTYPES)} or a torch.dtype, got {value!r}')
    return _DTYPES[value]


@MODEL_WRAPPERS.register_module(name=['FSDP', 'KilnFullyShardedDataParallel', 'MMFullyShardedDataParallel'])
class FullyShardedDataParallel(nn.Module):
    """Shard a kiln ``BaseModel``'s parameters, gradients and optimizer state over the ranks with FSDP2.

    ``fully_shard`` is applied to the submodules selected by ``shard_modules`` and then to the whole model.
    The model keeps its class and its ``train_step`` / ``val_step`` / ``test_step`` work as with DDP: this
    wrapper's ``train_step`` runs the data preprocessor, the forward pass (parameters are all-gathered per
    sharded submodule), ``parse_losses`` and ``optim_wrapper.update_params`` (gradients are reduce-scattered in
    ``backward``). Inside a gradient-accumulation window gradient sync is switched off with
    ``set_requires_gradient_sync(False)`` and on again for the window's last ``backward``.

    The model's weights are initialised (``init_weights()``, when it has one and is not initialised yet)
    *before* sharding and rank 0's are broadcast, so every rank shards the same full tensors.

    Checkpoints: ``state_dict()`` returns the full, unsharded state dict of the wrapped model (keys without a
    ``module.`` prefix; CPU tensors on rank 0, ``{}`` on the other ranks), gathered with
    ``torch.distributed.checkpoint.state_dict.get_model_state_dict(full_state_dict=True, cpu_offload=True)``;
    ``load_state_dict`` takes such a dict on rank 0 and broadcasts it (``set_model_state_dict(...,
    broadcast_from_rank0=True)``). Both are collectives: every rank must call them (the Runner does). After
    ``bind_optim_wrapper(optim_wrapper)`` the optimizer's ``state_dict`` / ``load_state_dict`` likewise give and
    take full (FQN-keyed) optimizer states. The saved checkpoint is therefore an ordinary kiln checkpoint,
    loadable without FSDP (``load_from`` in a single process).

    Args:
        module: the model, on its device (CPU with gloo, CUDA with NCCL).
        shard_modules: which submodules get their own ``fully_shard`` call (one all-gather each): ``None``
            (default): every direct child with parameters; a list of class names: every submodule of those
            classes (e.g. ``['BasicBlock', 'Bottleneck']``); ``[]``: only the root.
        reshard_after_forward: free the gathered parameters after the forward pass (ZeRO-3) or keep them
            until backward (ZeRO-2).
        mp_policy: ``dict(param_dtype='bfloat16', reduce_dtype='float32', output_dtype=None,
            cast_forward_inputs=True)`` for ``torch.distributed.fsdp.MixedPrecisionPolicy``, or None.
        cpu_offload: keep sharded parameters / gradients / optimizer state on the CPU
            (``CPUOffloadPolicy``; CUDA only).
        mesh: a ``DeviceMesh``; None uses the default 1-D mesh over all ranks.
        init_weights: call ``module.init_weights()`` before sharding.

    Raises:
        RuntimeError: ``torch.distributed`` is not initialised.
        ValueError: a bad ``mp_policy`` dtype.
    """

    is_model_wrapper = False  # the checkpoint helpers must call this wrapper's state_dict, not the module's

    def __init__(self, module: nn.Module, shard_modules: Sequence[str] | None = None,
                 reshard_after_forward: bool = True, mp_policy: dict | None = None, cpu_offload: bool = False,
                 mesh: Any = None, init_weights: bool = True) -> None:
        import torch.distributed as torch_dist
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            raise RuntimeError('FSDP needs an initialised process group: launch with torchrun and '
                               "launcher='pytorch' (or slurm/mpi)")
        super().__init__()
        if init_weights and hasattr(module, 'init_weights') and not getattr(module, 'is_init', False):
            module.init_weights()
        from .utils import broadcast_module_state
        broadcast_module_state(module)  # ranks may have drawn different weights (diff_rank_seed)
        kwargs: dict[str, Any] = dict(reshard_after_forward=reshard_after_forward, mesh=mesh)
        if mp_policy:
            mp = dict(mp_policy)
            for key in ('param_dtype', 'reduce_dtype', 'output_dtype'):
                if key in mp:
                    mp[key] = _dtype(mp[key], key)
            kwargs['mp_policy'] = MixedPrecisionPolicy(**mp)
        if cpu_offload:
            kwargs['offload_policy'] = CPUOffloadPolicy()
        for sub in _select(module, shard_modules):
            fully_shard(sub, **kwargs)
        fully_shard(module, **kwargs)
        self.module = module

    # ------------------------------------------------------------------------------------------- steps
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``module(*args, **kwargs)``."""
        return self.module(*args, **kwargs)

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """One optimisation step (see the class docstring); returns ``log_vars`` (detached 0-dim tensors)."""
        self.module.set_requires_gradient_sync(optim_wrapper.should_sync())
        with optim_wrapper.optim_context(self.module):  # autocast for AmpOptimWrapper; sync handled above
            data = self.module.data_preprocessor(data, True)
            losses = _run_forward(self.module, data, 'loss')
        loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: Any) -> list:
        """``module.val_step(data)`` (a collective: every rank must run the same number of steps)."""
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        """``module.test_step(data)`` (a collective, as ``val_step``)."""
        return self.module.test_step(data)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Skip gradient reduce-scatter for the forward *and* backward passes run inside the block."""
        self.module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self.module.set_requires_gradient_sync(True)

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self, *args: Any, destination: Any = None, prefix: str = '',
                   keep_vars: bool = False) -> dict[str, torch.Tensor]:
        """The full (unsharded) state dict of the wrapped model: CPU tensors on rank 0, ``{}`` elsewhere.

        A collective (every rank must call it). ``keep_vars`` is ignored (copies are returned).
        """
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        state = get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True,
                                                                           cpu_offload=True))
        out = destination if destination is not None else {}
        out.update({prefix + k: v for k, v in state.items()})
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False) -> Any:
        """Load a full state dict (rank 0's is used and broadcast; keys without ``module.``). A collective.

        Returns:
            ``NamedTuple(missing_keys, unexpected_keys)``.
        """
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        return set_model_state_dict(self.module, dict(state_dict), options=StateDictOptions(
            full_state_dict=True, broadcast_from_rank0=True, strict=strict))

    def bind_optim_wrapper(self, optim_wrapper: Any) -> Any:
        """Make the optimizer(s) of ``optim_wrapper`` (an OptimWrapper or OptimWrapperDict built on this
        model's parameters) save and load *full* states: ``optimizer.state_dict()`` returns
        ``get_optimizer_state_dict(full_state_dict=True, cpu_offload=True)`` (parameters keyed by name; rank 0
        holds it, others get ``{}``) and ``optimizer.load_state_dict(full_state)`` shards it again (every rank
        must pass the full state, e.g. read from the same checkpoint file). Both are collectives.

        Returns:
            ``optim_wrapper``.
        """
        wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'values') else [optim_wrapper]
        for wrapper in wrappers:
            _bind_optimizer(self.module, wrapper.optimizer)
        return optim_wrapper


def _bind_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                         set_optimizer_state_dict)

    @contextmanager
    def _unpatched() -> Iterator[None]:
        # torch's helpers call optimizer.state_dict()/load_state_dict() themselves: expose the class methods
        saved = optimizer.__dict__.pop('state_dict'), optimizer.__dict__.pop('load_state_dict')
        try:
            yield
        finally:
            optimizer.state_dict, optimizer.load_state_dict = saved

    def state_dict(self: torch.optim.Optimizer) -> dict:
        with _unpatched():
            return get_optimizer_state_dict(model, self, options=StateDictOptions(full_state_dict=True,
                                                                                  cpu_offload=True))

    def load_state_dict(self: torch.optim.Optimizer, state: dict) -> None:
        with _unpatched():
            set_optimizer_state_dict(model, self, state, options=StateDictOptions(full_state_dict=True))

    optimizer.state_dict = types.MethodType(state_dict, optimizer)
    optimizer.load_state_dict = types.MethodType(load_state_dict, optimizer)


def _select(module: nn.Module, shard_modules: Sequence[str] | None) -> list[nn.Module]:
    if shard_modules is None:
        return [child for child in module.children() if any(True for _ in child.parameters())]
    if isinstance(shard_modules, str):
        shard_modules = [shard_modules]
    names = set(shard_modules)
    return [m for m in module.modules() if m is not module and type(m).__name__ in names]


def _run_forward(model: nn.Module, data: Any, mode: str) -> Any:
    if isinstance(data, dict):
        return model(**data, mode=mode)
    if isinstance(data, (list, tuple)):
        return model(*data, mode=mode)
    raise TypeError(f'the data preprocessor must return a dict, list or tuple, got {type(data).__name__}')
