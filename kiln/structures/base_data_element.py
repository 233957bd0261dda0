"""``BaseDataElement``: the container passed between datasets, models and metrics.

A data element keeps two kinds of fields:

* **metainfo** fields: facts about the sample that do not change with the data (image id, image path,
  original shape, ...). Set them with ``set_metainfo`` or the ``metainfo=`` constructor argument.
* **data** fields: the annotations / predictions themselves (tensors, arrays, nested data elements).
  Set them as attributes (``element.bboxes = t``), with ``set_data`` or as constructor keyword arguments.

A name is either metainfo or data, never both. Subclasses give typed fields with properties whose setter calls
``self.set_field(value, '_name', dtype=SomeType)`` (the pattern MMEngine / MMDetection use); the private name is
hidden from ``keys()``.

Reference: MMEngine ``mmengine.structures.BaseDataElement`` (behaviour), re-implemented here.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator

import numpy as np
import torch

_RESERVED = ('_metainfo_fields', '_data_fields')


def _apply(value: Any, fn: Callable[[Any], Any], types: tuple) -> Any:
    """Apply ``fn`` to ``value`` when it is one of ``types`` or a data element; leave other values alone."""
    if isinstance(value, BaseDataElement):
        return fn(value)
    if isinstance(value, types):
        return fn(value)
    return value


class BaseDataElement:
    """A container of metainfo fields and data fields with tensor-like helpers.

    Args:
        metainfo: dict of metainfo fields (deep-copied).
        **kwargs: data fields.

    Raises:
        AttributeError: when a name is set both as metainfo and as data, or a reserved/private internal name
            is overwritten.
        TypeError: when ``metainfo`` / data arguments are not dicts.

    Example:
        >>> el = BaseDataElement(metainfo=dict(img_id=3), scores=torch.rand(5))
        >>> el.img_id, el.scores.shape
        (3, torch.Size([5]))
    """

    def __init__(self, *, metainfo: dict | None = None, **kwargs: Any) -> None:
        self._metainfo_fields: set[str] = set()
        self._data_fields: set[str] = set()
        if metainfo is not None:
            self.set_metainfo(metainfo)
        if kwargs:
            self.set_data(kwargs)

    # ------------------------------------------------------------------ setting fields
    def set_metainfo(self, metainfo: dict) -> None:
        """Add or update metainfo fields from a dict (values are deep-copied)."""
        if not isinstance(metainfo, dict):
            raise TypeError(f'metainfo must be a dict, got {type(metainfo).__name__}')
        for key, value in copy.deepcopy(metainfo).items():
            self.set_field(value, key, field_type='metainfo')

    def set_data(self, data: dict) -> None:
        """Add or update data fields from a dict (goes through ``__setattr__``, so subclass checks apply)."""
        if not isinstance(data, dict):
            raise TypeError(f'data must be a dict, got {type(data).__name__}')
        for key, value in data.items():
            setattr(self, key, value)

    def update(self, instance: 'BaseDataElement') -> None:
        """Copy the metainfo and data fields of another element of the same kind into this one."""
        if not isinstance(instance, BaseDataElement):
            raise TypeError(f'update expects a BaseDataElement, got {type(instance).__name__}')
        self.set_metainfo(dict(instance.metainfo_items()))
        self.set_data(dict(instance.items()))

    def set_field(self, value: Any, name: str, dtype: type | tuple | None = None,
                  field_type: str = 'data') -> None:
        """Set ``name`` as a metainfo or data field, optionally checking its type.

        Raises:
            ValueError: ``field_type`` not in ('metainfo', 'data').
            TypeError: ``value`` is not an instance of ``dtype``.
            AttributeError: ``name`` already exists as the other kind of field.
        """
        if field_type not in ('metainfo', 'data'):
            raise ValueError(f"field_type must be 'metainfo' or 'data', got {field_type!r}")
        if dtype is not None and not isinstance(value, dtype):
            raise TypeError(f'{type(self).__name__}.{name.lstrip("_")} must be {dtype}, '
                            f'got {type(value).__name__}')
        if field_type == 'metainfo':
            if name in self._data_fields:
                raise AttributeError(f'Cannot set {name!r} as metainfo of {type(self).__name__}: '
                                     'it is already a data field')
            self._metainfo_fields.add(name)
        else:
            if name in self._metainfo_fields:
                raise AttributeError(f'Cannot set {name!r} as data of {type(self).__name__}: '
                                     'it is already a metainfo field')
            self._data_fields.add(name)
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _RESERVED:
            if name in self.__dict__:
                raise AttributeError(f'{name} is an internal attribute of {type(self).__name__} '
                                     'and cannot be overwritten')
            object.__setattr__(self, name, value)
            return
        self.set_field(value, name, field_type='data')

    def __delattr__(self, name: str) -> None:
        if name in _RESERVED:
            raise AttributeError(f'{name} is an internal attribute of {type(self).__name__} '
                                 'and cannot be deleted')
        object.__delattr__(self, name)
        self._metainfo_fields.discard(name)
        self._data_fields.discard(name)

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key`` (metainfo or data) or ``default``."""
        return getattr(self, key, default)

    _MISSING = object()

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove field ``key`` and return it; raises ``KeyError`` when missing and no default is given."""
        if key in self._metainfo_fields or key in self._data_fields:
            value = getattr(self, key)
            delattr(self, key)
            return value
        if default is BaseDataElement._MISSING:
            raise KeyError(f'{key!r} is not a field of {type(self).__name__}')
        return default

    def __contains__(self, key: str) -> bool:
        return key in self._data_fields or key in self._metainfo_fields

    # ------------------------------------------------------------------ views
    def _private_of_properties(self) -> set[str]:
        cls = type(self)
        return {'_' + k for k in self._data_fields if isinstance(getattr(cls, k, None), property)}

    def keys(self) -> list[str]:
        """Names of the data fields (private storage of typed properties hidden)."""
        hidden = self._private_of_properties()
        return [k for k in sorted(self._data_fields) if k not in hidden]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> Iterator[tuple[str, Any]]:
        for k in self.keys():
            yield k, getattr(self, k)

    def metainfo_keys(self) -> list[str]:
        return sorted(self._metainfo_fields)

    def metainfo_values(self) -> list[Any]:
        return [getattr(self, k) for k in self.metainfo_keys()]

    def metainfo_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.metainfo_keys():
            yield k, getattr(self, k)

    @property
    def metainfo(self) -> dict:
        """A new dict of the metainfo fields (values not copied)."""
        return dict(self.metainfo_items())

    def all_keys(self) -> list[str]:
        return self.metainfo_keys() + self.keys()

    def all_values(self) -> list[Any]:
        return [getattr(self, k) for k in self.all_keys()]

    def all_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.all_keys():
            yield k, getattr(self, k)

    # ------------------------------------------------------------------ constructors
    def new(self, *, metainfo: dict | None = None, **kwargs: Any) -> 'BaseDataElement':
        """A new element of the same class; metainfo and data default to this element's (shared values)."""
        out = type(self)()
        out.set_metainfo(metainfo if metainfo is not None else self.metainfo)
        out.set_data(kwargs if kwargs else dict(self.items()))
        return out

    def clone(self) -> 'BaseDataElement':
        """A deep copy: tensors are cloned (keeping autograd history), other values deep-copied."""
        out = type(self)()
        out.set_metainfo(self.metainfo)
        out.set_data({k: _deep_clone(v) for k, v in self.items()})
        return out

    def _map(self, fn: Callable[[Any], Any], types: tuple) -> 'BaseDataElement':
        out = self.new()
        out.set_data({k: _apply(v, fn, types) for k, v in self.items()})
        return out

    # ------------------------------------------------------------------ tensor-like helpers
    def to(self, *args: Any, **kwargs: Any) -> 'BaseDataElement':
        """Call ``.to(*args, **kwargs)`` on every data value that has it (tensors, nested elements, modules)."""
        out = self.new()
        for k, v in self.items():
            if hasattr(v, 'to') and callable(v.to) and not isinstance(v, np.ndarray):
                v = v.to(*args, **kwargs)
            setattr(out, k, v)
        return out

    def cpu(self) -> 'BaseDataElement':
        """Move tensors (and nested elements) to the CPU."""
        return self._map(lambda v: v.cpu(), (torch.Tensor,))

    def cuda(self) -> 'BaseDataElement':
        """Move tensors (and nested elements) to the current CUDA device."""
        return self._map(lambda v: v.cuda(), (torch.Tensor,))

    def detach(self) -> 'BaseDataElement':
        """Detach tensors from the autograd graph."""
        return self._map(lambda v: v.detach(), (torch.Tensor,))

    def numpy(self) -> 'BaseDataElement':
        """Convert tensors to numpy arrays (detached, on the CPU)."""
        def conv(v: Any) -> Any:
            return v.numpy() if isinstance(v, BaseDataElement) else v.detach().cpu().numpy()
        return self._map(conv, (torch.Tensor,))

    def to_tensor(self) -> 'BaseDataElement':
        """Convert numpy arrays to tensors (``torch.from_numpy``; memory shared)."""
        def conv(v: Any) -> Any:
            return v.to_tensor() if isinstance(v, BaseDataElement) else torch.from_numpy(v)
        return self._map(conv, (np.ndarray,))

    def to_dict(self) -> dict:
        """One plain dict holding metainfo and data fields; nested elements are converted recursively."""
        return {k: v.to_dict() if isinstance(v, BaseDataElement) else v for k, v in self.all_items()}

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        def fmt(obj: Any, indent: int) -> str:
            pad = ' ' * indent
            if isinstance(obj, BaseDataElement):
                body = [f'{pad}  META INFORMATION']
                body += [f'{pad}  {k}: {fmt(v, indent + 4).lstrip()}' for k, v in obj.metainfo_items()]
                body.append(f'{pad}  DATA FIELDS')
                body += [f'{pad}  {k}: {fmt(v, indent + 4).lstrip()}' for k, v in obj.items()]
                return f'<{type(obj).__name__}(\n' + '\n'.join(body) + f'\n{pad}) at {hex(id(obj))}>'
            if isinstance(obj, torch.Tensor) and obj.numel() > 20:
                return f'Tensor(shape={tuple(obj.shape)}, dtype={obj.dtype}, device={obj.device})'
            if isinstance(obj, np.ndarray) and obj.size > 20:
                return f'ndarray(shape={obj.shape}, dtype={obj.dtype})'
            return repr(obj)
        return fmt(self, 0)


def _deep_clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, BaseDataElement):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_deep_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_deep_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _deep_clone(v) for k, v in value.items()}
    return copy.deepcopy(value)
