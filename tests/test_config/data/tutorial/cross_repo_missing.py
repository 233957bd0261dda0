# MMDetection ships this file; kiln does not.
_base_ = ['mmdet::_base_/models/faster_rcnn_r50_fpn.py']
