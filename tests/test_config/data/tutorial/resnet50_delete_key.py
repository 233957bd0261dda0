# _delete_=True: the inherited keys that are not written again (momentum, weight_decay) are dropped.
_base_ = ['optimizer_cfg.py', 'runtime_cfg.py']
model = dict(type='ResNet', depth=50)
optimizer = dict(_delete_=True, type='SGD', lr=0.01)
