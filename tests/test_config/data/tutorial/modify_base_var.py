# `_base_.model` is a copy of the inherited value; changing it leaves `model` untouched.
_base_ = ['resnet50.py']
a = _base_.model
a.type = 'MobileNet'
