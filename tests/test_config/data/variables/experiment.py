_base_ = ['schedule.py']
num_classes = 3
model = dict(type='Detector', bbox_head=dict(num_classes=num_classes))
checkpoint_interval = _base_.max_epochs // 4
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=checkpoint_interval))
