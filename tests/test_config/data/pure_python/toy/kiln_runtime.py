# Absolute (IDE-friendly) module paths: `mmdet.configs.<path>` is kiln's own configs/<path>.py.
from mmengine.config import read_base

with read_base():
    from mmdet.configs._base_.default_runtime import *
    from mmdet.configs._base_.schedules.schedule_1x import train_cfg

train_cfg.max_epochs = 3
