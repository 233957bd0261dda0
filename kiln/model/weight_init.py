"""Weight initialisation functions and the ``init_cfg`` initialisers registered in ``WEIGHT_INITIALIZERS``.

An ``init_cfg`` is a dict (or list of dicts) such as
``dict(type='Kaiming', layer='Conv2d', override=dict(type='Normal', name='fc', std=0.01))``:

* ``layer``: class names (``'Conv2d'``, ``'_BatchNorm'``, ...; any class in a module's MRO matches) whose
  sub-modules are initialised. Without ``layer`` an initialiser touches nothing except through ``override``
  (MMEngine's rule), and a warning says so.
* ``override``: dict or list of dicts with ``name`` = attribute name of a child module, initialised as a whole
  (every sub-module with ``weight`` / ``bias``). An override with only ``name`` reuses the outer arguments.
* ``bias``: constant for biases; ``bias_prob``: prior probability p, biases set to ``-log((1 - p) / p)``
  (RetinaNet's focal-loss prior, Lin et al. 2017).

Reference: MMEngine ``mmengine.model.weight_init`` (behaviour), re-implemented with ``torch.nn.init``.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from kiln.registry import WEIGHT_INITIALIZERS


# ---------------------------------------------------------------------- functions
def _has(module: nn.Module, name: str) -> bool:
    return getattr(module, name, None) is not None and isinstance(getattr(module, name), torch.Tensor)


def constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """Fill ``module.weight`` with ``val`` and ``module.bias`` with ``bias`` (when present)."""
    if _has(module, 'weight'):
        nn.init.constant_(module.weight, val)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def xavier_init(module: nn.Module, gain: float = 1, bias: float = 0, distribution: str = 'normal') -> None:
    """Xavier/Glorot init of ``module.weight`` (Glorot & Bengio 2010); ``distribution`` 'normal' | 'uniform'."""
    if distribution not in ('uniform', 'normal'):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
    if _has(module, 'weight'):
        fn = nn.init.xavier_uniform_ if distribution == 'uniform' else nn.init.xavier_normal_
        fn(module.weight, gain=gain)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def normal_init(module: nn.Module, mean: float = 0, std: float = 1, bias: float = 0) -> None:
    """Weights ~ N(mean, std^2), bias constant."""
    if _has(module, 'weight'):
        nn.init.normal_(module.weight, mean, std)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def trunc_normal_init(module: nn.Module, mean: float = 0, std: float = 1, a: float = -2, b: float = 2,
                      bias: float = 0) -> None:
    """Weights ~ N(mean, std^2) truncated to [a, b] (absolute bounds), bias constant."""
    if _has(module, 'weight'):
        nn.init.trunc_normal_(module.weight, mean, std, a, b)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def uniform_init(module: nn.Module, a: float = 0, b: float = 1, bias: float = 0) -> None:
    """Weights ~ U(a, b), bias constant."""
    if _has(module, 'weight'):
        nn.init.uniform_(module.weight, a, b)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def kaiming_init(module: nn.Module, a: float = 0, mode: str = 'fan_out', nonlinearity: str = 'relu',
                 bias: float = 0, distribution: str = 'normal') -> None:
    """Kaiming/He init of ``module.weight`` (He et al. 2015); ``distribution`` 'normal' | 'uniform'."""
    if distribution not in ('uniform', 'normal'):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
    if _has(module, 'weight'):
        fn = nn.init.kaiming_uniform_ if distribution == 'uniform' else nn.init.kaiming_normal_
        fn(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    if _has(module, 'bias'):
        nn.init.constant_(module.bias, bias)


def caffe2_xavier_init(module: nn.Module, bias: float = 0) -> None:
    """Caffe2's "XavierFill": Kaiming uniform with a=1, fan_in, leaky_relu (used by Detectron FPN convs)."""
    kaiming_init(module, a=1, mode='fan_in', nonlinearity='leaky_relu', bias=bias, distribution='uniform')


def bias_init_with_prob(prior_prob: float) -> float:
    """Bias value ``-log((1 - p) / p)`` that makes ``sigmoid(bias) == prior_prob`` (focal-loss prior)."""
    if not 0 < prior_prob < 1:
        raise ValueError(f'prior_prob must be in (0, 1), got {prior_prob}')
    return float(-math.log((1 - prior_prob) / prior_prob))


# ---------------------------------------------------------------------- initialisers
def _class_names(module: nn.Module) -> set[str]:
    return {c.__name__ for c in type(module).__mro__}


class BaseInit:
    """Base of the config-driven initialisers: selects sub-modules by ``layer`` class names.

    Args:
        bias: constant for biases.
        bias_prob: if given, biases are set to ``bias_init_with_prob(bias_prob)`` instead of ``bias``.
        layer: class name or list of class names to initialise.

    Attributes:
        wholemodule: set by ``initialize`` for ``override`` targets: every sub-module with a weight is
            initialised, regardless of ``layer``.
    """

    def __init__(self, *, bias: float = 0, bias_prob: float | None = None,
                 layer: str | list[str] | None = None) -> None:
        if not isinstance(bias, (int, float)):
            raise TypeError(f'bias must be a number, got {type(bias).__name__}')
        if bias_prob is not None:
            bias = bias_init_with_prob(bias_prob)
        if layer is None:
            layer = []
        elif isinstance(layer, str):
            layer = [layer]
        elif not isinstance(layer, (list, tuple)) or not all(isinstance(x, str) for x in layer):
            raise TypeError(f'layer must be a str or a list of str, got {layer!r}')
        self.bias = bias
        self.layer = list(layer)
        self.wholemodule = False

    def init(self, module: nn.Module) -> None:
        """Initialise one (leaf) module; implemented by subclasses."""
        raise NotImplementedError

    def __call__(self, module: nn.Module) -> None:
        if not self.wholemodule and not self.layer:
            return
        wanted = set(self.layer)

        def apply(m: nn.Module) -> None:
            if self.wholemodule or wanted & _class_names(m):
                self.init(m)
        module.apply(apply)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'wholemodule')
        return f'{type(self).__name__}({args})'


@WEIGHT_INITIALIZERS.register_module(name='Constant')
class ConstantInit(BaseInit):
    """``init_cfg=dict(type='Constant', val=1, bias=0, layer=...)``."""

    def __init__(self, val: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val = val

    def init(self, module: nn.Module) -> None:
        constant_init(module, self.val, self.bias)


@WEIGHT_INITIALIZERS.register_module(name='Xavier')
class XavierInit(BaseInit):
    """``init_cfg=dict(type='Xavier', gain=1, distribution='normal', layer=...)``."""

    def __init__(self, gain: float = 1, distribution: str = 'normal', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gain, self.distribution = gain, distribution

    def init(self, module: nn.Module) -> None:
        xavier_init(module, self.gain, self.bias, self.distribution)


@WEIGHT_INITIALIZERS.register_module(name='Normal')
class NormalInit(BaseInit):
    """``init_cfg=dict(type='Normal', mean=0, std=1, layer=...)``."""

    def __init__(self, mean: float = 0, std: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean, self.std = mean, std

    def init(self, module: nn.Module) -> None:
        normal_init(module, self.mean, self.std, self.bias)


@WEIGHT_INITIALIZERS.register_module(name='TruncNormal')
class TruncNormalInit(BaseInit):
    """``init_cfg=dict(type='TruncNormal', mean=0, std=1, a=-2, b=2, layer=...)`` (a, b absolute bounds)."""

    def __init__(self, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean, self.std, self.a, self.b = mean, std, a, b

    def init(self, module: nn.Module) -> None:
        trunc_normal_init(module, self.mean, self.std, self.a, self.b, self.bias)


@WEIGHT_INITIALIZERS.register_module(name='Uniform')
class UniformInit(BaseInit):
    """``init_cfg=dict(type='Uniform', a=0, b=1, layer=...)``."""

    def __init__(self, a: float = 0, b: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a, self.b = a, b

    def init(self, module: nn.Module) -> None:
        uniform_init(module, self.a, self.b, self.bias)


@WEIGHT_INITIALIZERS.register_module(name='Kaiming')
class KaimingInit(BaseInit):
    """``init_cfg=dict(type='Kaiming', a=0, mode='fan_out', nonlinearity='relu', distribution='normal')``."""

    def __init__(self, a: float = 0, mode: str = 'fan_out', nonlinearity: str = 'relu',
                 distribution: str = 'normal', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a, self.mode, self.nonlinearity, self.distribution = a, mode, nonlinearity, distribution

    def init(self, module: nn.Module) -> None:
        kaiming_init(module, self.a, self.mode, self.nonlinearity, self.bias, self.distribution)


@WEIGHT_INITIALIZERS.register_module(name='Caffe2Xavier')
class Caffe2XavierInit(KaimingInit):
    """``init_cfg=dict(type='Caffe2Xavier', layer='Conv2d')``: Kaiming uniform, a=1, fan_in, leaky_relu."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(a=1, mode='fan_in', nonlinearity='leaky_relu', distribution='uniform', **kwargs)


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class PretrainedInit:
    """Load weights from a checkpoint: ``dict(type='Pretrained', checkpoint=..., prefix=None)``.

    ``checkpoint`` is a local path, an ``http(s)://`` URL, ``torchvision://<model name>`` (the ImageNet
    weights of ``torchvision.models.<name>``, IMAGENET1K_V1 when available, as MMDetection's configs expect) or
    ``open-mmlab://<name>``; URLs come from the torch hub cache (see :func:`load_state_dict_from`).
    A dict with a ``state_dict`` (or ``model``) key is unwrapped, and a DDP ``module.`` prefix stripped. With
    ``prefix='backbone.'`` only keys under that prefix are loaded, with the prefix removed. ``revise_keys``
    then renames keys: a list of ``(regex, replacement)`` pairs applied in order with ``re.sub`` (MMEngine's
    ``load_checkpoint`` option), e.g. ``[(r'^stem', 'conv1')]``. Loading is non-strict; missing /
    unexpected keys are reported with ``warnings.warn``.

    Raises:
        FileNotFoundError: a local checkpoint does not exist, or a URL is neither cached nor downloadable.
        ValueError: ``prefix`` matches no key of the checkpoint; malformed ``revise_keys``.
    """

    def __init__(self, checkpoint: str, prefix: str | None = None, map_location: str = 'cpu',
                 revise_keys: list[tuple[str, str]] | None = None) -> None:
        import re
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location
        try:
            self.revise_keys = [(re.compile(pat), str(repl)) for pat, repl in (revise_keys or [])]
        except (TypeError, ValueError, re.error) as e:
            raise ValueError(f'Pretrained: revise_keys must be a list of (regex, replacement) pairs, '
                             f'got {revise_keys!r} ({e})') from None
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        state = load_state_dict_from(self.checkpoint, self.map_location)
        if self.prefix is not None:
            p = self.prefix
            state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
            if not state:
                raise ValueError(f'{self.checkpoint}: no key starts with prefix {p!r}')
        for pattern, repl in self.revise_keys:
            state = {pattern.sub(repl, k): v for k, v in state.items()}
        result = module.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(f'Loading {self.checkpoint} into {type(module).__name__}: '
                          f'missing keys {result.missing_keys}, unexpected keys {result.unexpected_keys}',
                          stacklevel=2)

    def __repr__(self) -> str:
        return f'PretrainedInit(checkpoint={self.checkpoint!r}, prefix={self.prefix!r})'


# ``open-mmlab://<name>`` checkpoints of MMDetection configs (MMCV's model-zoo table, the entries kiln's configs use)
OPEN_MMLAB_URLS = {
    'detectron/resnet50_caffe': 'https://download.openmmlab.com/pretrain/third_party/resnet50_caffe-788b5fa3.pth',
    'detectron/resnet101_caffe':
        'https://download.openmmlab.com/pretrain/third_party/resnet101_caffe-3ad79236.pth',
}


def hub_cache_path(url: str) -> str:
    """Where ``torch.hub`` keeps the download of ``url``: ``<torch.hub.get_dir()>/checkpoints/<file name>``
    (``$TORCH_HOME/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints`` by default)."""
    import os
    from urllib.parse import urlparse
    return os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(urlparse(url).path))


def _load_url(url: str, checkpoint: str, map_location: str) -> Any:
    """Load ``url`` from the torch hub cache, downloading it there first when it is missing."""
    import os
    cached = hub_cache_path(url)
    if os.path.isfile(cached):
        return torch.load(cached, map_location=map_location, weights_only=True)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location=map_location, progress=False,
                                                  weights_only=True)
    except OSError as e:  # URLError, HTTPError, socket errors (offline machines)
        raise FileNotFoundError(
            f'Pretrained checkpoint {checkpoint!r} is not in the torch hub cache ({cached}) and downloading '
            f'{url} failed ({type(e).__name__}: {e}). On an offline machine, copy the file to {cached} '
            f'(the cache directory follows $TORCH_HOME) or give a local path as checkpoint.') from None


def load_state_dict_from(checkpoint: str, map_location: str = 'cpu') -> dict[str, torch.Tensor]:
    """Read a state dict (``{name: Tensor}``) from a local path, an ``http(s)://`` URL, ``torchvision://name``
    or ``open-mmlab://name``.

    * ``torchvision://resnet50``: the ImageNet weights of ``torchvision.models.resnet50`` (IMAGENET1K_V1 when
      available, the weights MMDetection's configs were trained from); torchvision's ResNet key names
      (``conv1``, ``bn1``, ``layer1.0.conv1`` ..., ``fc``) are MMDetection's, so they load as they are.
    * ``open-mmlab://detectron/resnet50_caffe`` etc.: MMCV's model-zoo names (see ``OPEN_MMLAB_URLS``).
    * URLs (and the two schemes above) are read from the torch hub cache (:func:`hub_cache_path`), downloaded
      there when missing.

    A dict holding ``state_dict`` (or ``model``) is unwrapped (MMDetection checkpoints) and a DDP ``module.``
    prefix removed. Files are read with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: a local file does not exist, or a URL is neither cached nor downloadable (the
            message names the cache path to fill on an offline machine).
        KeyError: unknown ``torchvision://`` model or ``open-mmlab://`` name.
        TypeError: the file holds no state dict.
    """
    import os
    if checkpoint.startswith('torchvision://'):
        from torchvision.models import get_model_weights
        name = checkpoint[len('torchvision://'):]
        try:
            weights = get_model_weights(name)
        except (ValueError, KeyError) as e:
            raise KeyError(f'{checkpoint}: torchvision has no model {name!r} ({e})') from None
        w = getattr(weights, 'IMAGENET1K_V1', None) or weights.DEFAULT
        obj: Any = _load_url(w.url, checkpoint, map_location)
    elif checkpoint.startswith('open-mmlab://'):
        name = checkpoint[len('open-mmlab://'):]
        if name not in OPEN_MMLAB_URLS:
            raise KeyError(f'{checkpoint}: unknown open-mmlab model name {name!r}; known: '
                           f'{sorted(OPEN_MMLAB_URLS)}. Download the file and give its local path instead.')
        obj = _load_url(OPEN_MMLAB_URLS[name], checkpoint, map_location)
    elif checkpoint.startswith(('http://', 'https://')):
        obj = _load_url(checkpoint, checkpoint, map_location)
    else:
        if '://' not in checkpoint and not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'Pretrained checkpoint not found: {checkpoint}')
        from kiln.checkpoint import read_checkpoint  # weights-only; .safetensors and fsspec URLs too
        obj = read_checkpoint(checkpoint, map_location)
    if isinstance(obj, dict):
        for key in ('state_dict', 'model'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise TypeError(f'{checkpoint}: expected a state dict, got {type(obj).__name__}')
    return {k[7:] if k.startswith('module.') else k: v for k, v in obj.items()}


# ---------------------------------------------------------------------- entry point
def _build_initializer(cfg: dict) -> Any:
    from kiln.registry import build_from_cfg
    return build_from_cfg(cfg, WEIGHT_INITIALIZERS)


def _call(func: Any, module: nn.Module, report: Any) -> None:
    if report is None:
        func(module)
    else:
        with report.track(module, repr(func)):
            func(module)


def _initialize(module: nn.Module, cfg: dict, wholemodule: bool = False, report: Any = None) -> None:
    func = _build_initializer(cfg)
    func.wholemodule = wholemodule
    _call(func, module, report)


def _initialize_override(module: nn.Module, override: dict | list, cfg: dict, report: Any = None) -> None:
    if not isinstance(override, (dict, list)):
        raise TypeError(f'init_cfg override must be a dict or a list of dicts, got {type(override).__name__}')
    for ov in [override] if isinstance(override, dict) else override:
        ov = dict(copy.deepcopy(ov))
        name = ov.pop('name', None)
        if name is None:
            raise ValueError(f'init_cfg override needs a "name" key (a child module attribute), got {ov}')
        if not ov:
            ov.update(cfg)
        elif 'type' not in ov:
            raise ValueError(f'init_cfg override of {name!r} has arguments but no "type": {ov}')
        child = getattr(module, name, None)
        if not isinstance(child, nn.Module):
            raise RuntimeError(f'init_cfg override: {type(module).__name__} has no child module {name!r}')
        _initialize(child, ov, wholemodule=True, report=report)


def initialize(module: nn.Module, init_cfg: dict | list[dict], report: Any = None) -> None:
    """Initialise ``module`` from an ``init_cfg`` dict or list of dicts (see the module docstring).

    ``report``: an optional ``kiln.model.init_report.InitReport`` recording which initialiser set each parameter.

    Raises:
        TypeError: ``init_cfg`` is not a dict / list of dicts.
        KeyError: unknown initialiser ``type`` (from the registry).
        ValueError / RuntimeError: malformed ``override``.
    """
    if not isinstance(init_cfg, (dict, list)):
        raise TypeError(f'init_cfg must be a dict or a list of dicts, got {type(init_cfg).__name__}')
    for cfg in [init_cfg] if isinstance(init_cfg, dict) else init_cfg:
        cfg = dict(copy.deepcopy(cfg))
        override = cfg.pop('override', None)
        func = _build_initializer(cfg)
        if isinstance(func, BaseInit) and not func.layer:
            if override is None:
                warnings.warn(f'init_cfg {cfg} has neither `layer` nor `override`: it initialises nothing in '
                              f'{type(module).__name__}', stacklevel=2)
        else:
            _call(func, module, report)
        if override is not None:
            cfg.pop('layer', None)
            _initialize_override(module, override, cfg, report)
