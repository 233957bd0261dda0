# MMDetection's bytetrack/ pattern: take the inherited model apart through `_base_` and delete
# inherited keys; MMEngine's `_base_` is the inherited dict itself, not a copy.
_base_ = ['base_detector.py']

detector = _base_.model
detector.pop('data_preprocessor')
detector.bbox_head.update(dict(num_classes=1))
detector.test_cfg.nms.update(dict(iou_threshold=0.7))
del _base_.model
del _base_.tta_model

model = dict(type='ByteTrack', detector=detector, tracker=dict(type='ByteTracker'))
