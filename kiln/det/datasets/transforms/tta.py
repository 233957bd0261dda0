"""``TestTimeAug``: turn one sample into several augmented views (the cartesian product of transform choices).

Reference: MMCV 2.x ``mmcv.transforms.TestTimeAug`` (behaviour and config keys), re-implemented; used with
:class:`kiln.det.models.test_time_augs.DetTTAModel`, which merges the per-view predictions.
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Sequence

from kiln.dataset import BaseTransform, Compose
from kiln.registry import TRANSFORMS

__all__ = ['TestTimeAug']


@TRANSFORMS.register_module()
class TestTimeAug(BaseTransform):
    """Apply every combination of transform choices to a copy of the sample and gather the views.

    ``transforms`` is a list of *stages*; each stage is a list of alternative transforms. One view is made for
    every element of the cartesian product of the stages (first stage varying slowest), by applying the chosen
    transforms in stage order to a deep copy of ``results``. For example

    .. code-block:: python

        dict(type='TestTimeAug', transforms=[
            [dict(type='Resize', scale=(512, 384), keep_ratio=True),
             dict(type='Resize', scale=(640, 480), keep_ratio=True)],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                   'scale_factor', 'flip', 'flip_direction'))]])

    gives 4 views: (512, flipped), (512, not flipped), (640, flipped), (640, not flipped). ``RandomFlip`` with
    ``prob=1.`` / ``prob=0.`` is deterministic, which is how flips are expressed here, as in MMCV.

    Returns ``{key: [value of view 0, value of view 1, ...]}`` over the keys of the first view; after
    ``PackDetInputs`` that is ``dict(inputs=[Tensor (3, H_a, W_a)] * A, data_samples=[DetDataSample] * A)``,
    which ``pseudo_collate`` and :class:`kiln.model.BaseTTAModel` understand.

    Args:
        transforms: list of stages, each a list of transforms (config dicts built from ``TRANSFORMS`` or
            callables). A stage may not be empty.
        allow_empty: drop views whose pipeline returns ``None`` instead of raising (the sample itself is dropped,
            ``None`` returned, when no view is left).

    Raises:
        TypeError: ``transforms`` is not a list of lists, or an element is neither a dict nor callable (the
            message gives its position).
        ValueError: a stage is empty; at transform time, a view's pipeline returned ``None`` and ``allow_empty``
            is False, or the views have different keys.
    """

    def __init__(self, transforms: Sequence[Sequence[dict | Callable]], allow_empty: bool = False) -> None:
        if isinstance(transforms, (str, dict)) or not isinstance(transforms, Sequence):
            raise TypeError(f'TestTimeAug: transforms must be a list of lists of transforms, got '
                            f'{type(transforms).__name__}')
        stages: list[list[Callable]] = []
        for i, stage in enumerate(transforms):
            if isinstance(stage, (str, dict)) or not isinstance(stage, Sequence):
                raise TypeError(f'TestTimeAug: transforms[{i}] must be a list of alternative transforms, got '
                                f'{type(stage).__name__}')
            if not stage:
                raise ValueError(f'TestTimeAug: transforms[{i}] is empty; each stage needs at least one transform')
            built = []
            for j, t in enumerate(stage):
                if isinstance(t, dict):
                    t = TRANSFORMS.build(t)
                if not callable(t):
                    raise TypeError(f'TestTimeAug: transforms[{i}][{j}] must be a config dict or a callable, got '
                                    f'{type(t).__name__}')
                built.append(t)
            stages.append(built)
        self.transforms = stages
        self.subroutines = [Compose(list(chain)) for chain in itertools.product(*stages)]
        self.allow_empty = allow_empty

    def __len__(self) -> int:
        """The number of views made from each sample."""
        return len(self.subroutines)

    def transform(self, results: dict) -> dict[str, list[Any]] | None:
        """Return ``{key: [value per view]}`` (see the class docstring)."""
        views = []
        for a, subroutine in enumerate(self.subroutines):
            out = subroutine(copy.deepcopy(results))
            if out is None:
                if self.allow_empty:
                    continue
                raise ValueError(f'TestTimeAug: view {a} ({subroutine!r}) dropped the sample '
                                 f'{results.get("img_path", "")!r}; pass allow_empty=True to skip such views')
            views.append(out)
        if not views:
            return None
        keys = list(views[0])
        for a, view in enumerate(views[1:], 1):
            if set(view) != set(keys):
                raise ValueError(f'TestTimeAug: view {a} has keys {sorted(view)} but view 0 has {sorted(keys)}')
        return {k: [view[k] for view in views] for k in keys}

    def __repr__(self) -> str:
        stages = ', '.join('[' + ', '.join(repr(t) for t in stage) + ']' for stage in self.transforms)
        return f'{type(self).__name__}(transforms=[{stages}], allow_empty={self.allow_empty})'
