# A pure-Python base: `SGD` is imported lazily (torch is not imported while the config is read).
from torch.optim import SGD

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type=SGD, lr=0.02, momentum=0.9))
