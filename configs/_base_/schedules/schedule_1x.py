# MMDetection's 1x schedule: 12 epochs, lr x0.1 at epochs 8 and 11, linear warm-up over 500 iterations.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
# compute_loss: each validation also logs val/loss and val/<term> beside the metrics (the val pipeline loads the
# annotations); it costs one more forward pass per batch (docs/hooks.md "Validation loss"). False turns it off.
val_cfg = dict(type='ValLoop', compute_loss=True)
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))

# Scale the lr linearly with the total batch size when `--auto-scale-lr` is on (base: 8 GPUs x 2 images).
auto_scale_lr = dict(enable=False, base_batch_size=16)
