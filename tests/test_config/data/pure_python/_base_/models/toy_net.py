import torch.nn as nn
from torch.nn import ReLU

model = dict(type='ToyNet', depth=50, act_cfg=dict(type=ReLU), norm=nn.BatchNorm2d,
             head=dict(type='ToyHead', num_classes=80, loss=dict(type='ToyLoss', weight=1.0)))
