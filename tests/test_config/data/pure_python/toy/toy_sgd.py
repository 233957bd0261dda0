# The pure-Python style: bases are imported in `with read_base():`, classes are imported by name.
from kiln.config import read_base

with read_base():
    from .._base_.models.toy_net import *
    from .._base_.optimizer import *
    from .._base_.runtime import gpu_ids

from torch.optim import Adam

model.head.num_classes = 3                                   # attribute assignment
model.update(dict(depth=18, head=dict(loss=dict(weight=2.0))))  # recursive update
optim_wrapper.update(dict(optimizer=dict(_delete_=True, type=Adam, lr=0.001)))  # replace
work_dir = './work_dirs/{{fileBasenameNoExtension}}'
