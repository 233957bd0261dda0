# {{_base_.xxx}}: a copy of an inherited value.
_base_ = ['resnet50.py']
a = {{_base_.model}}
