# Mask R-CNN on the balloon set (61 train / 13 val photos, one class, COCO-format polygons), trained from scratch
# on 2 CPU cores in under 10 minutes (numbers in docs/det_models.md, "Recipes"). The data sits in the shared
# folder beside the repository (`../shared/data/balloon`, see its README).
#
# Choices for the CPU budget (see also configs/fcos/fcos_r18-slim_fpn_bccd.py):
# - photos are up to 2048 px: resized to fit 512x512 (balloons stay 30-400 px); masks are loaded as polygons,
#   kept as polygons through resize and flip (LoadAnnotations(with_mask=True, poly2mask=False): only the 28x28
#   mask targets are rasterised, not full-size bitmaps), padded with the batch;
# - ResNet-18 at half width, BN in train mode, FPN of 64 channels on strides 8/16/32 (+ stride 64 for the RPN),
#   one anchor size per level (4 x stride);
# - RoI heads: 7x7 box features (two FC layers of 256) and 14x14 mask features (four 3x3 convs of 64 channels,
#   28x28 mask targets), 128 sampled RoIs per image, 2x2 RoIAlign samples per bin;
# - horizontal flips; 20 epochs of 16 iterations, SGD lr 0.02 with warm-up, x0.1 for the last 4 epochs,
#   gradient clipping.
# Evaluation: box and mask AP on val with pycocotools (the json holds the polygons).
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

dataset_type = 'CocoDataset'
data_root = '../shared/data/balloon/'
metainfo = dict(classes=('balloon',), palette=[(220, 20, 60)])

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
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=1),
        mask_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=64, featmap_strides=[8, 16, 32]),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=1)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    classwise=False)
test_evaluator = val_evaluator

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.02, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=4, max_keep_ckpts=2, save_best='coco/segm_mAP', rule='greater'))
randomness = dict(seed=0)
