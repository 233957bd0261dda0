# Inherits `optimizer` from optimizer_cfg.py.
_base_ = ['optimizer_cfg.py']
model = dict(type='ResNet', depth=50)
