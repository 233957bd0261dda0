"""Detection datasets (registered in ``kiln.registry.DATASETS``) and their transforms."""
from . import transforms
from .base_det_dataset import BaseDetDataset
from .coco import COCO_CLASSES, CocoDataset
from .voc import VOC_CLASSES, VOCDataset
from .xml_style import XMLDataset
from .yolo import YOLODataset

__all__ = ['BaseDetDataset', 'CocoDataset', 'XMLDataset', 'VOCDataset', 'COCO_CLASSES', 'VOC_CLASSES',
           'YOLODataset', 'transforms']
