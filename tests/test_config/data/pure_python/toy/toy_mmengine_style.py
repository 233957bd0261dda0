# Written exactly as for MMEngine: `mmengine.config.read_base`, named imports from bases.
from mmengine.config import read_base

with read_base():
    from .._base_.models.toy_net import model
    from .._base_.legacy_schedule import *

from torch.nn import GELU

model.act_cfg.type = GELU
train_cfg.max_epochs = 24
