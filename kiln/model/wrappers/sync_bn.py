"""Convert BatchNorm layers to ``torch.nn.SyncBatchNorm`` (``cfg.sync_bn='torch'``) and back."""
from __future__ import annotations

from torch import nn

__all__ = ['convert_sync_batchnorm', 'revert_sync_batchnorm']

_IMPLS = ('torch',)


def convert_sync_batchnorm(module: nn.Module, implementation: str = 'torch') -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` of ``module`` by ``nn.SyncBatchNorm`` (statistics computed over
    the whole distributed batch; MMEngine's ``convert_sync_batchnorm``).

    Weights, running statistics and ``requires_grad`` are kept. Note: PyTorch's ``SyncBatchNorm`` computes
    its statistics on accelerators only (CUDA...); on CPU it raises in training mode.

    Args:
        module: the model (not yet wrapped in DDP).
        implementation: ``'torch'`` (the only one).

    Returns:
        The converted module (``module`` itself unless ``module`` is a BatchNorm layer).

    Raises:
        ValueError: unknown ``implementation``.
    """
    if implementation not in _IMPLS:
        raise ValueError(f'convert_sync_batchnorm: sync_bn must be one of {_IMPLS}, got {implementation!r}')
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` of ``module`` by a plain batch norm (any input rank, like
    ``SyncBatchNorm``) with the same weights and statistics (for single-process / CPU use of a model trained
    with SyncBN).

    Returns:
        The converted module (a new one when ``module`` itself is a ``SyncBatchNorm``).
    """
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = _BatchNormXd(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, revert_sync_batchnorm(child))
    return out


class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
    """Batch norm accepting any input rank (what ``SyncBatchNorm`` accepts)."""

    def _check_input_dim(self, input):  # noqa: A002 - torch's signature
        return
