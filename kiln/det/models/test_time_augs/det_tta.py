"""``DetTTAModel``: merge the predictions of test-time augmented views (flips, scales) of each image.

Reference: MMDetection 3.x ``mmdet.models.test_time_augs.DetTTAModel`` (behaviour and config keys),
re-implemented on :class:`kiln.model.BaseTTAModel`; extended to carry ``scores_per_class`` and instance masks.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from kiln.model import BaseTTAModel
from kiln.registry import MODELS
from kiln.structures import InstanceData

from ...datasets.transforms.flip import DIRECTIONS, bbox_flip
from ..layers.bbox_nms import batched_nms

__all__ = ['DetTTAModel', 'flip_masks']

_MASK_DIMS = {'horizontal': (-1,), 'vertical': (-2,), 'diagonal': (-2, -1)}


def flip_masks(masks: Tensor, direction: str) -> Tensor:
    """Flip (K, H, W) masks (any dtype) like :func:`~kiln.det.datasets.transforms.flip.bbox_flip` flips boxes.

    Raises:
        ValueError: unknown ``direction``.
    """
    if direction not in _MASK_DIMS:
        raise ValueError(f'flip direction must be one of {DIRECTIONS}, got {direction!r}')
    return torch.flip(masks, _MASK_DIMS[direction])


@MODELS.register_module()
class DetTTAModel(BaseTTAModel):
    """Test-time augmentation of a detector: predict every view (see :class:`kiln.det.datasets.transforms.TestTimeAug`)
    and merge the views of each image by NMS.

    Each view's ``pred_instances`` come from the wrapped detector with ``rescale=True``, i.e. in the original
    image's pixels but still flipped when the view was flipped. Merging, per image:

    1. boxes (xyxy pixels) of flipped views are flipped back inside ``ori_shape`` (metainfo ``flip`` /
       ``flip_direction``), and so are instance ``masks`` (bool (K, H, W) in the original image, Mask R-CNN);
    2. the instances of all views are concatenated (``bboxes``, ``scores``, ``labels`` and, when every view has
       them, ``scores_per_class`` and ``masks``);
    3. ``batched_nms`` (``torchvision.ops.nms`` per label, MMCV semantics) with ``tta_cfg['nms']``, then the
       ``tta_cfg['max_per_img']`` best are kept, by decreasing score. Masks follow their boxes.

    The merged sample carries the metainfo of the image's first view.

    A detector checkpoint loads into the TTA model through :func:`kiln.checkpoint.load_checkpoint` (and
    ``kiln test --tta``), which loads into the wrapped ``module``; the TTA model's own ``state_dict()`` has the
    detector's keys under ``module.`` (stripped again by the default ``revise_keys``).

    Config (MMDetection's keys): the test command puts the detector under ``module``::

        tta_model = dict(type='DetTTAModel',
                         tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

    Args:
        tta_cfg: ``dict(nms=dict(type='nms', iou_threshold=..., class_agnostic=False), max_per_img=int)``.
            ``nms=None`` only sorts by score (no suppression).
        module: the detector or its config (see :class:`kiln.model.BaseTTAModel`).
        data_preprocessor: see :class:`kiln.model.BaseTTAModel`.

    Raises:
        KeyError: ``tta_cfg`` lacks ``nms`` or ``max_per_img``.
        ValueError: ``max_per_img`` < 1; at merge time, a view's ``flip_direction`` is unknown, or the views of an
            image have different ``ori_shape``.
    """

    def __init__(self, tta_cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        tta_cfg = dict(tta_cfg or {})
        for key in ('nms', 'max_per_img'):
            if key not in tta_cfg:
                raise KeyError(f"DetTTAModel: tta_cfg needs {key!r} (e.g. tta_cfg=dict(nms=dict(type='nms', "
                               f"iou_threshold=0.5), max_per_img=100)), got keys {sorted(tta_cfg)}")
        if int(tta_cfg['max_per_img']) < 1:
            raise ValueError(f"DetTTAModel: tta_cfg['max_per_img'] must be >= 1, got {tta_cfg['max_per_img']}")
        self.tta_cfg = tta_cfg

    def merge_aug_bboxes(self, aug_bboxes: Sequence[Tensor], aug_scores: Sequence[Tensor] | None,
                         img_metas: Sequence[Mapping[str, Any]]) -> Tensor | tuple[Tensor, Tensor]:
        """Flip each view's (K_a, 4) xyxy boxes back into the original image and concatenate them (and the
        scores when given), as MMDetection's ``merge_aug_bboxes``."""
        recovered = []
        for bboxes, meta in zip(aug_bboxes, img_metas):
            if meta.get('flip', False):
                bboxes = bbox_flip(bboxes, tuple(meta['ori_shape']), meta['flip_direction'])
            recovered.append(bboxes)
        merged = torch.cat(recovered, 0)
        if aug_scores is None:
            return merged
        return merged, torch.cat(list(aug_scores), 0)

    def merge_preds(self, data_samples_list: Sequence[Sequence[Any]]) -> list:
        """One merged data sample per image: ``data_samples_list[i]`` holds the A views of image ``i``."""
        return [self._merge_single_sample(samples) for samples in data_samples_list]

    def _merge_single_sample(self, data_samples: Sequence[Any]) -> Any:
        first = data_samples[0]
        shapes = {tuple(ds.metainfo.get('ori_shape', ())) for ds in data_samples}
        if len(shapes) != 1:
            raise ValueError(f'DetTTAModel: the views of {first.metainfo.get("img_path", "an image")} have '
                             f'different ori_shape {sorted(shapes)}')
        views = []
        for ds in data_samples:
            pred = ds.pred_instances
            meta = ds.metainfo
            fields: dict[str, Tensor] = dict(bboxes=pred.bboxes, scores=pred.scores, labels=pred.labels)
            flip = bool(meta.get('flip', False))
            direction = meta.get('flip_direction')
            if flip and direction not in DIRECTIONS:
                raise ValueError(f'DetTTAModel: a flipped view of {meta.get("img_path", "an image")} has '
                                 f'flip_direction={direction!r}; add "flip" and "flip_direction" to '
                                 "PackDetInputs' meta_keys in tta_pipeline")
            if flip:
                fields['bboxes'] = bbox_flip(pred.bboxes, tuple(meta['ori_shape']), direction)
            for optional in ('scores_per_class', 'masks'):
                if optional in pred:
                    value = pred.get(optional)
                    if optional == 'masks' and flip:
                        value = flip_masks(torch.as_tensor(value), direction)
                    fields[optional] = value
            views.append(fields)
        common = set.intersection(*(set(v) for v in views))
        merged = {k: torch.cat([v[k] for v in views], 0) for k in views[0] if k in common}
        if merged['bboxes'].numel() == 0:
            return first
        _, keep = batched_nms(merged['bboxes'], merged['scores'], merged['labels'], self.tta_cfg['nms'])
        keep = keep[:int(self.tta_cfg['max_per_img'])]
        results = InstanceData()
        for key, value in merged.items():
            setattr(results, key, value[keep])
        first.pred_instances = results
        return first
