"""``BaseModule``: an ``nn.Module`` initialised from ``init_cfg``."""
from __future__ import annotations

import copy
import warnings
from abc import ABCMeta

from torch import nn

from .init_report import InitReport
from .weight_init import initialize


def _is_pretrained(cfg: dict) -> bool:
    t = cfg.get('type')
    return t == 'Pretrained' or getattr(t, '__name__', None) == 'PretrainedInit'


class BaseModule(nn.Module, metaclass=ABCMeta):
    """``nn.Module`` with an ``init_cfg`` applied by ``init_weights()``.

    An abstract base class (``ABCMeta``, which ``nn.Module``'s plain ``type`` metaclass allows): a subclass that
    leaves an ``@abstractmethod`` unimplemented (e.g. ``BaseModel.forward``) cannot be instantiated (TypeError
    naming the missing methods), as in MMEngine.

    ``init_weights()`` runs once per module (``is_init`` tracks it): it applies this module's non-pretrained
    ``init_cfg`` entries, then calls ``init_weights()`` of every child that has one and is not yet
    initialised (so a child's own ``init_cfg`` wins over its parent's ``layer=`` rule), and finally loads a
    ``Pretrained`` entry, so loaded weights are never overwritten by random initialisation.

    Args:
        init_cfg: dict or list of dicts, e.g. ``dict(type='Kaiming', layer='Conv2d')``; see
            ``kiln.model.weight_init`` for the types (Constant, Xavier, Normal, TruncNormal, Uniform,
            Kaiming, Caffe2Xavier, Pretrained) and the ``layer`` / ``override`` keys.
    """

    def __init__(self, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__()
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = bool(value)

    def init_weights(self) -> None:
        """Initialise this module and its children from their ``init_cfg`` (once).

        The outermost call records which initialiser set each parameter (``init_cfg`` entries by their repr,
        children's own ``init_weights()`` by class name, untouched parameters as 'not initialised by
        init_cfg'); read it with ``init_report`` / ``format_init_report()`` (the Runner logs it at DEBUG).

        Raises:
            TypeError: ``init_cfg`` is not a dict or a list of dicts.
        """
        if self._is_init:
            warnings.warn(f'init_weights of {type(self).__name__} has been called more than once; '
                          'ignored', stacklevel=2)
            return
        cfgs = self.init_cfg
        if cfgs is not None and not isinstance(cfgs, (dict, list)):
            raise TypeError(f'{type(self).__name__}.init_cfg must be a dict or a list of dicts, '
                            f'got {type(cfgs).__name__}')
        report = self.__dict__.get('_init_report_ctx')
        top = report is None
        if top:
            report = InitReport(self)
            for m in self.modules():
                m.__dict__['_init_report_ctx'] = report
        try:
            cfgs = [] if cfgs is None else ([cfgs] if isinstance(cfgs, dict) else list(cfgs))
            pretrained = [c for c in cfgs if _is_pretrained(c)]
            others = [c for c in cfgs if not _is_pretrained(c)]
            if others:
                initialize(self, others, report)
            for child in self.children():
                if hasattr(child, 'init_weights') and not getattr(child, 'is_init', False):
                    with report.track(child, f'{type(child).__name__}.init_weights()'):
                        child.init_weights()
            if pretrained:
                initialize(self, pretrained, report)
        finally:
            if top:
                for m in self.modules():
                    m.__dict__.pop('_init_report_ctx', None)
                self.__dict__['_init_report'] = report
        self._is_init = True

    @property
    def init_report(self) -> dict[str, str] | None:
        """``{parameter name: initialiser}`` of the last top-level ``init_weights()`` call (None before)."""
        report = self.__dict__.get('_init_report')
        return None if report is None else report.as_dict()

    def format_init_report(self) -> str:
        """The init report as text, one ``name - shape: initialiser`` line per parameter ('' before init)."""
        report = self.__dict__.get('_init_report')
        return '' if report is None else report.format()

    def __repr__(self) -> str:
        s = super().__repr__()
        if self.init_cfg:
            s += f'\ninit_cfg={self.init_cfg}'
        return s


class ModuleList(BaseModule, nn.ModuleList):
    """``nn.ModuleList`` with ``init_cfg``."""

    def __init__(self, modules=None, init_cfg: dict | list[dict] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class Sequential(BaseModule, nn.Sequential):
    """``nn.Sequential`` with ``init_cfg``."""

    def __init__(self, *args: nn.Module, init_cfg: dict | list[dict] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)
