# `_base_.model` is the inherited value itself (MMEngine): changing it changes `model` too.
_base_ = ['resnet50.py']
a = _base_.model
a.type = 'MobileNet'
