# ATSS on BCCD from scratch on 2 CPU cores: the FCOS demo recipe (configs/fcos/fcos_r18-slim_fpn_bccd.py: slim
# ResNet-18, 3-level 64-channel FPN, same data, schedule and budget) with the head swapped for ATSS
# (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training Sample
# Selection", CVPR 2020; MMDetection's ATSSHead / ATSSAssigner). One square anchor per cell (32 / 64 / 128 px at
# strides 8 / 16 / 32 for 25-120 px cells): the box branch regresses deltas from anchors, so it learns from the
# first iterations, where FCOS's distance branch starts from points (docs/demo.md, ablations).
_base_ = '../fcos/fcos_r18-slim_fpn_bccd.py'

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True, type='ATSSHead', num_classes=3, in_channels=64, feat_channels=64, stacked_convs=4,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
                              strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
                   debug=False),
    test_cfg=dict(_delete_=True, nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))
