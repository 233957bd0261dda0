# Faster R-CNN on BCCD, trained from scratch on 2 CPU cores in under 10 minutes (numbers in docs/det_models.md,
# "Recipes"). The FCOS demo (configs/fcos/fcos_r18-slim_fpn_bccd.py) explains the CPU-budget choices shared here.
#
# Two-stage specifics, scaled down for the budget:
# - backbone: ResNet-18 at half width (stages of 32/64/128/256 channels), BN in train mode, no pretrained weights;
# - FPN on strides 8/16/32 (+ a max-pooled stride-64 level for the RPN) with 64 channels: BCCD cells are
#   32-100 px at the 512x384 input, platelets about 20 px, so the stride-4 level only costs time;
# - RPN: one anchor size per level (4 x stride: 32/64/128/256 px), 3 aspect ratios;
# - RoI head: 7x7 RoIAlign with 2x2 samples per bin (MMDetection: adaptive, which makes torchvision's CPU
#   backward slow) on the 3 finest levels, two shared FC layers of 256 (MMDetection: 1024), 128 sampled RoIs
#   per image (MMDetection: 512), at most 500 proposals per image (MMDetection: 1000);
# - same augmentation and schedule shape as the FCOS demo (flips, SGD lr 0.02 with warm-up, x0.1 for the last
#   epoch, gradient clipping).
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
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
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[64, 128, 256],
        out_channels=64,
        num_outs=4),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4], strides=[8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=64, featmap_strides=[8, 16, 32]),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=500)))

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
    optimizer=dict(lr=0.02, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='coco/bbox_mAP', rule='greater'))
randomness = dict(seed=0)
