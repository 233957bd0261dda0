# fcos_r18-slim_fpn_bccd.py with early stopping: validate every epoch (val/loss terms are logged beside the COCO
# metrics, val_cfg.compute_loss=True in the base schedule) and stop when coco/bbox_mAP has not improved by more
# than 0.005 for 3 validations in a row. Monitor 'val/loss' instead (rule 'less' is inferred) to stop on the
# validation loss. See docs/hooks.md (EarlyStoppingHook, stop file) and docs/eval_watch.md.
_base_ = ['./fcos_r18-slim_fpn_bccd.py']

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20], gamma=0.1)
]
custom_hooks = [
    dict(type='EarlyStoppingHook', monitor='coco/bbox_mAP', rule='greater', min_delta=0.005, patience=3)
]
