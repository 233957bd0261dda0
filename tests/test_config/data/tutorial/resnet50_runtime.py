# Two bases: `optimizer` and `gpu_ids` are both inherited.
_base_ = ['optimizer_cfg.py', 'runtime_cfg.py']
model = dict(type='ResNet', depth=50)
