"""One ``unwrap_model`` for every wrapper kiln meets: DataParallel/DDP, kiln's FSDP wrapper, torch.compile."""
import torch
from torch import nn

from kiln.checkpoint import get_state_dict
from kiln.model.wrappers import is_model_wrapper, unwrap_model


class Declared(nn.Module):
    """A third-party wrapper that declares itself, as MMEngine's wrappers do."""

    is_model_wrapper = True

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_unwrap_model_strips_nested_wrappers_of_every_kind():
    net = nn.Linear(2, 3)
    compiled = torch.compile(net)  # an OptimizedModule (nothing is compiled until it is called)
    assert type(compiled).__name__ == 'OptimizedModule' and unwrap_model(compiled) is net
    nested = torch.compile(Declared(nn.DataParallel(Declared(net))))
    assert unwrap_model(nested) is net and unwrap_model(net) is net
    assert is_model_wrapper(Declared(net)) and is_model_wrapper(nn.DataParallel(net)) and not is_model_wrapper(net)
    assert list(get_state_dict(nested)) == ['weight', 'bias']  # checkpoints see no wrapper prefix
