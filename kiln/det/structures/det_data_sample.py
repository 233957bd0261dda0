"""``DetDataSample``: the data sample passed between detection datasets, models, metrics and visualizers.

Reference: MMDetection 3.x ``mmdet.structures.DetDataSample`` (behaviour), re-implemented on
``kiln.structures.BaseDataElement``.
"""
from __future__ import annotations

from kiln.structures import BaseDataElement, InstanceData


def _typed_instances(name: str, doc: str) -> property:
    """A data-field property stored as ``_<name>`` that only accepts ``InstanceData``."""
    private = '_' + name

    def getter(self: BaseDataElement) -> InstanceData:
        return getattr(self, private)

    def setter(self: BaseDataElement, value: InstanceData) -> None:
        if not isinstance(value, InstanceData):
            # ``BaseDataElement.__setattr__`` registered the public name before calling us: undo that so the
            # sample does not advertise a field it does not hold.
            if private not in self._data_fields:
                self._data_fields.discard(name)
            raise TypeError(f'{type(self).__name__}.{name} must be an InstanceData, got {type(value).__name__}')
        self.set_field(value, private, dtype=InstanceData)

    def deleter(self: BaseDataElement) -> None:
        delattr(self, private)

    return property(getter, setter, deleter, doc)


class DetDataSample(BaseDataElement):
    """One image's detection annotations, predictions and metainfo.

    Data fields (all :class:`~kiln.structures.InstanceData`, type-checked on assignment; ``del`` removes them):

    * ``gt_instances``: ``bboxes`` float32 (N, 4) xyxy pixels in the *transformed* (resized / flipped) image,
      ``labels`` int64 (N,) contiguous class indices ``0..C-1``.
    * ``ignored_instances``: same fields for annotations flagged ``ignore_flag=1`` (VOC ``difficult``,
      COCO ``iscrowd``).
    * ``pred_instances``: ``bboxes`` float32 (K, 4) xyxy pixels in the *original* image, ``scores`` float32
      (K,), ``labels`` int64 (K,), ``scores_per_class`` float32 (K, C).

    Metainfo keys (set by ``PackDetInputs`` and ``DetDataPreprocessor``): ``img_id``, ``img_path``,
    ``ori_shape`` (h, w), ``img_shape`` (h, w), ``scale_factor`` (w_scale, h_scale), ``flip``,
    ``flip_direction``, ``batch_input_shape`` (h, w), ``pad_shape`` (h, w), ``instances`` (the dataset's
    original annotation list, used by ``CocoMetric`` without ``ann_file``).

    Raises:
        TypeError: assigning anything but an ``InstanceData`` to one of the three instance fields.

    Example:
        >>> sample = DetDataSample(metainfo=dict(img_shape=(480, 640)))
        >>> sample.gt_instances = InstanceData(bboxes=torch.zeros(2, 4), labels=torch.zeros(2, dtype=torch.long))
        >>> 'gt_instances' in sample, len(sample.gt_instances)
        (True, 2)
    """

    gt_instances = _typed_instances('gt_instances', 'Ground-truth instances (InstanceData).')
    pred_instances = _typed_instances('pred_instances', 'Predicted instances (InstanceData).')
    ignored_instances = _typed_instances('ignored_instances', 'Ignored ground-truth instances (InstanceData).')


SampleList = list[DetDataSample]
OptSampleList = SampleList | None
