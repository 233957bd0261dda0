_base_ = ['base_runtime.py']
backend_args = None
model = dict(
    type='YOLOX',
    data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=32),
    bbox_head=dict(type='YOLOXHead', num_classes=80),
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.65)))
tta_model = dict(type='DetTTAModel')
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'scale_factor')),
]
val_dataloader = dict(
    batch_size=1,
    dataset=dict(type='CocoDataset', ann_file='val.json', pipeline=test_pipeline))
# the same dict object under two keys, and the pipeline list inside both
test_dataloader = val_dataloader
