# FCOS on BCCD, trained from scratch on 2 CPU cores in about 7 minutes (see docs/demo.md for the numbers).
#
# Choices for a CPU budget, from scratch (no pretrained weights can be downloaded here):
# - backbone: ResNet-18 at half width (base_channels=32: stages of 32/64/128/256 channels), trainable BN in
#   train mode; about 4x fewer FLOPs than ResNet-18 and it learns faster from scratch on 200 images;
# - input 512x384 (0.8x the native 640x480): cells stay 40-120 px, platelets about 25 px;
# - three FPN levels (strides 8/16/32) with 64 channels, FCOS head with 4 stacked GN convs of 64 channels,
#   regress ranges matched to the cell sizes, centre sampling, GIoU loss, centerness on the regression branch;
# - horizontal and vertical flips (smears have no up or down), SGD lr 0.01 with 100 warm-up iterations,
#   x0.1 for the last epoch, gradient clipping at norm 35.
_base_ = [
    '../_base_/models/fcos_r50_fpn.py',
    '../_base_/datasets/bccd_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        depth=18,
        base_channels=32,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(
        in_channels=[64, 128, 256],
        out_channels=64,
        start_level=0,
        add_extra_convs=False,
        num_outs=3),
    bbox_head=dict(
        num_classes=3,
        in_channels=64,
        feat_channels=64,
        stacked_convs=4,
        strides=[8, 16, 32],
        regress_ranges=((-1, 64), (64, 128), (128, 1e8)),
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        center_sampling=True,
        center_sample_radius=1.5,
        norm_on_bbox=True,
        centerness_on_reg=True,
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
    test_cfg=dict(score_thr=0.05, max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(512, 384), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 384), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[7], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='coco/bbox_mAP', rule='greater'))
randomness = dict(seed=0)

# Test-time augmentation (`kiln test CONFIG CKPT --tta`, MMDetection's keys): the image and its horizontal flip at
# the training scale, merged by NMS in DetTTAModel. Measured on the BCCD test split with the Faster R-CNN recipe
# (docs/det_inference.md): +0.003 mAP with this; all four flips +0.001; adding a second scale (640x480) -0.017.
tta_model = dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_img_scales = [(512, 384)]  # more scales: one view per scale and flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=s, keep_ratio=True) for s in tta_img_scales],
             [dict(type='RandomFlip', prob=1., direction='horizontal'), dict(type='RandomFlip', prob=0.)],
             [dict(type='LoadAnnotations', with_bbox=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                              'flip_direction'))]])
]
