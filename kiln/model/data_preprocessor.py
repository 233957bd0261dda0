"""Data preprocessors: move a collated batch to the model's device (and normalise / pad images)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kiln.registry import MODELS
from kiln.structures import BaseDataElement


@MODELS.register_module()
class BaseDataPreprocessor(nn.Module):
    """Moves tensors and data elements of a batch to the device of this module, recursively.

    The device is read from a zero-size non-persistent buffer, so ``model.to(device)`` / ``.cuda()`` / DDP
    move it with the model and nothing is added to the state dict.

    Args:
        non_blocking: passed to ``Tensor.to`` (useful with pinned-memory dataloaders).
    """

    def __init__(self, non_blocking: bool = False) -> None:
        super().__init__()
        self._non_blocking = non_blocking
        self.register_buffer('_device_probe', torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._buffers['_device_probe'].device  # not through nn.Module.__getattr__ (4x slower)

    def cast_data(self, data: Any) -> Any:
        """Return ``data`` with every tensor / data element moved to ``self.device`` (containers rebuilt)."""
        if type(data) is dict:  # the collated batch: plain tensors handled inline (the per-iteration hot path)
            device = self._buffers['_device_probe'].device
            on_cpu = device.type == 'cpu'
            out = {}
            for k, v in data.items():
                if type(v) is torch.Tensor:
                    # ``Tensor.to`` returns the tensor itself when it is already there: skip the call (on CPU,
                    # ``is_cpu`` tells without building a ``torch.device`` per tensor)
                    there = v.is_cpu if on_cpu else v.device == device
                    out[k] = v if there else v.to(device, non_blocking=self._non_blocking)
                else:
                    out[k] = self.cast_data(v)
            return out
        if isinstance(data, (torch.Tensor, BaseDataElement)):
            return data.to(self.device, non_blocking=self._non_blocking)
        if isinstance(data, Mapping):
            return type(data)({k: self.cast_data(v) for k, v in data.items()})
        if isinstance(data, (str, bytes)) or data is None:
            return data
        if isinstance(data, tuple) and hasattr(data, '_fields'):
            return type(data)(*(self.cast_data(v) for v in data))
        if isinstance(data, Sequence):
            return type(data)(self.cast_data(v) for v in data)
        return data

    def forward(self, data: dict, training: bool = False) -> Any:
        """Move ``data`` to the device; ``training`` is unused here (subclasses may augment batches)."""
        return self.cast_data(data)


@MODELS.register_module()
class ImgDataPreprocessor(BaseDataPreprocessor):
    """Batch images: to device, to float, channel swap, normalise, pad and stack.

    Input ``data['inputs']``: a list of uint8 ``(C, H, W)`` tensors (sizes may differ) or a uint8
    ``(N, C, H, W)`` tensor. Steps, in order: move the uint8 data to the device (4x less to copy than float),
    convert to float32, optionally reverse the channel order (``bgr_to_rgb`` / ``rgb_to_bgr``), compute
    ``(x - mean) / std``, pad each image at the bottom/right with ``pad_value`` (after normalisation) to the
    batch's max height/width rounded up to a multiple of ``pad_size_divisor``, and stack.
    Output ``data['inputs']``: float32 ``(N, C, H_pad, W_pad)``; ``data['data_samples']`` moved to the device
    (``None`` if absent).

    Args:
        mean, std: per-channel values (after the channel swap), e.g. ImageNet RGB ``[123.675, 116.28,
            103.53]`` / ``[58.395, 57.12, 57.375]``; both or neither.
        pad_size_divisor: padded height and width are multiples of this.
        pad_value: value of the padded pixels.
        bgr_to_rgb / rgb_to_bgr: swap channels 0 and 2 (3-channel inputs only).
        non_blocking: see ``BaseDataPreprocessor``.

    Raises:
        ValueError: both swaps requested, only one of mean/std given, mean/std length not 1 or C, images with
            a wrong number of dims/channels (names the index).
        TypeError: ``inputs`` is neither a tensor nor a list of tensors.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pad_size_divisor: int = 1, pad_value: float = 0, bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False, non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        if bgr_to_rgb and rgb_to_bgr:
            raise ValueError('ImgDataPreprocessor: bgr_to_rgb and rgb_to_bgr cannot both be True')
        if (mean is None) != (std is None):
            raise ValueError('ImgDataPreprocessor: mean and std must be given together')
        if int(pad_size_divisor) < 1:
            raise ValueError(f'ImgDataPreprocessor: pad_size_divisor must be >= 1, got {pad_size_divisor}')
        self._enable_normalize = mean is not None
        if mean is not None:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
            std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
            if mean_t.numel() != std_t.numel():
                raise ValueError(f'ImgDataPreprocessor: mean has {mean_t.numel()} values, std {std_t.numel()}')
            if bool((std_t == 0).any()):
                raise ValueError(f'ImgDataPreprocessor: std must be non-zero, got {std}')
            self.register_buffer('mean', mean_t.view(-1, 1, 1), persistent=False)
            self.register_buffer('std', std_t.view(-1, 1, 1), persistent=False)
        self._channel_conversion = bgr_to_rgb or rgb_to_bgr
        self.pad_size_divisor = int(pad_size_divisor)
        self.pad_value = pad_value

    def _check_channels(self, c: int, where: str) -> None:
        if self._channel_conversion and c != 3:
            raise ValueError(f'ImgDataPreprocessor: channel swap needs 3 channels, {where} has {c}')
        if self._enable_normalize and self.mean.shape[0] not in (1, c):
            raise ValueError(f'ImgDataPreprocessor: mean/std have {self.mean.shape[0]} values but {where} has '
                             f'{c} channels')

    def _process(self, img: torch.Tensor, where: str) -> torch.Tensor:
        """(C, H, W) or (N, C, H, W) -> float32, swapped, normalised (same shape)."""
        c_dim = img.dim() - 3
        self._check_channels(img.shape[c_dim], where)
        if self._channel_conversion:
            img = img.flip(c_dim)
        img = img.float()
        if self._enable_normalize:
            img = (img - self.mean) / self.std
        return img

    def _padded_size(self, h: int, w: int) -> tuple[int, int]:
        d = self.pad_size_divisor
        return math.ceil(h / d) * d, math.ceil(w / d) * d

    def forward(self, data: dict, training: bool = False) -> dict:
        """Return ``dict(inputs=float32 (N, C, H_pad, W_pad), data_samples=...)`` on the device."""
        if not isinstance(data, Mapping) or 'inputs' not in data:
            raise TypeError("ImgDataPreprocessor expects a dict with key 'inputs'")
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                raise ValueError(f"ImgDataPreprocessor: a stacked 'inputs' tensor must be (N, C, H, W), got "
                                 f'shape {tuple(inputs.shape)}')
            batch = self._process(inputs, 'inputs')
            h, w = batch.shape[-2:]
            ph, pw = self._padded_size(h, w)
            if (ph, pw) != (h, w):
                batch = F.pad(batch, (0, pw - w, 0, ph - h), value=self.pad_value)
        elif isinstance(inputs, Sequence) and len(inputs) > 0 and all(isinstance(t, torch.Tensor) for t in inputs):
            imgs = []
            for i, img in enumerate(inputs):
                if img.dim() != 3:
                    raise ValueError(f"ImgDataPreprocessor: inputs[{i}] must be (C, H, W), got shape "
                                     f'{tuple(img.shape)}')
                imgs.append(self._process(img, f'inputs[{i}]'))
            channels = {img.shape[0] for img in imgs}
            if len(channels) != 1:
                raise ValueError(f'ImgDataPreprocessor: images have different channel counts {sorted(channels)}')
            ph, pw = self._padded_size(max(i.shape[1] for i in imgs), max(i.shape[2] for i in imgs))
            batch = imgs[0].new_full((len(imgs), imgs[0].shape[0], ph, pw), self.pad_value)
            for i, img in enumerate(imgs):
                batch[i, :, :img.shape[1], :img.shape[2]] = img
        else:
            raise TypeError(f"ImgDataPreprocessor: 'inputs' must be a Tensor (N, C, H, W) or a non-empty list of "
                            f'(C, H, W) Tensors, got {type(inputs).__name__}')
        out = dict(data)
        out['inputs'] = batch
        out.setdefault('data_samples', None)
        return out
