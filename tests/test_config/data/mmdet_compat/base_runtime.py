# A miniature of MMDetection's base files: what the derived files below inherit.
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[8, 11]),
]
