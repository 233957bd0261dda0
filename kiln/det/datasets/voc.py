"""``VOCDataset``: PASCAL VOC 2007/2012 detection (20 classes), or any VOC-layout dataset via ``metainfo``.

Reference: MMDetection 3.x ``mmdet.datasets.VOCDataset`` (behaviour), re-implemented.
"""
from __future__ import annotations

from typing import Any

from kiln.registry import DATASETS

from ..visualization.palette import make_palette
from .xml_style import XMLDataset

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')


@DATASETS.register_module()
class VOCDataset(XMLDataset):
    """Pascal VOC dataset (see :class:`XMLDataset` for the layout, record format and errors).

    ``metainfo['dataset_type']`` is ``'VOC2007'`` / ``'VOC2012'`` when ``sub_data_root`` names one, else None.

    Example (BCCD, a VOC-layout dataset with 3 classes)::

        dict(type='VOCDataset', data_root='data/bccd/', ann_file='ImageSets/Main/test.txt',
             data_prefix=dict(sub_data_root=''), metainfo=dict(classes=('RBC', 'WBC', 'Platelets')),
             test_mode=True, pipeline=[...])
    """

    METAINFO = {'classes': VOC_CLASSES, 'palette': make_palette(len(VOC_CLASSES))}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if 'VOC2007' in self.sub_data_root:
            self._metainfo['dataset_type'] = 'VOC2007'
        elif 'VOC2012' in self.sub_data_root:
            self._metainfo['dataset_type'] = 'VOC2012'
        else:
            self._metainfo['dataset_type'] = None
