# Classes named by their MMDetection / MMEngine / MMCV import paths; kiln builds its own classes.
from mmcv.transforms import LoadImageFromFile
from mmdet.models.losses import FocalLoss
from mmengine.hooks import CheckpointHook

loss_cls = dict(type=FocalLoss, gamma=2.0, alpha=0.25, loss_weight=1.0)
pipeline = [dict(type=LoadImageFromFile)]
checkpoint = dict(type=CheckpointHook, interval=1)
