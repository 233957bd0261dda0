"""A user module that registers an optimizer; imported through `custom_imports`."""
from kiln.registry import OPTIMIZERS


@OPTIMIZERS.register_module(force=True)
class TutorialCustomOptim:
    def __init__(self, lr=0.1):
        self.lr = lr
