"""Detection datasets (registered in ``kiln.registry.DATASETS``) and their transforms."""
from . import samplers, transforms
from .base_det_dataset import BaseDetDataset
from .catalog import CatalogDataset, DatasetCatalog, Metadata, MetadataCatalog, register_coco_instances
from .coco import COCO_CLASSES, CocoDataset
from .dataset_wrappers import MultiImageMixDataset
from .voc import VOC_CLASSES, VOCDataset
from .xml_style import XMLDataset
from .yolo import YOLODataset

__all__ = ['BaseDetDataset', 'CocoDataset', 'XMLDataset', 'VOCDataset', 'COCO_CLASSES', 'VOC_CLASSES',
           'YOLODataset', 'CatalogDataset', 'DatasetCatalog', 'Metadata', 'MetadataCatalog',
           'register_coco_instances', 'samplers', 'transforms', 'MultiImageMixDataset']
