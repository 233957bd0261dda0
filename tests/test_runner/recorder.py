"""A hook that records every mount point it sees (for order tests)."""
from kiln.hooks import Hook
from kiln.hooks.hook import _STAGES


def _record(stage):
    def method(self, runner, **kwargs):
        self.calls.append(stage)
        self.details.append((stage, runner.epoch, runner.iter, kwargs.get('batch_idx')))
    return method


class Recorder(Hook):
    """``calls``: the stage names in call order; ``details``: (stage, runner.epoch, runner.iter, batch_idx)."""

    def __init__(self, priority='NORMAL'):
        self.priority = priority
        self.calls, self.details = [], []


for _stage in _STAGES:
    setattr(Recorder, _stage, _record(_stage))
