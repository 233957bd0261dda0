# Bases from another package's configs; `mmdet::` means kiln's own configs (configs/ of the repo).
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/datasets/bccd_detection.py',
    'mmdet::_base_/default_runtime.py',
    'mmdet::_base_/models/fcos_r50_fpn.py',
]
