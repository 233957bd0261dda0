# An old-style config that inherits a pure-Python one; `_base_` merging rules apply.
_base_ = ['toy_sgd.py']
model = dict(head=dict(num_classes=5))
optim_wrapper = dict(optimizer=dict(lr=0.01))
