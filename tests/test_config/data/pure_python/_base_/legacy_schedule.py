# An old-style (`_base_ = ...`) base imported by a pure-Python config.
_base_ = ['runtime.py']
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12)
gpu_ids = [0]
