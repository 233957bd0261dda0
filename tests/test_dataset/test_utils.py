import random
from collections import namedtuple

import numpy as np
import pytest
import torch

from kiln.dataset import default_collate, pseudo_collate, worker_init_fn
from kiln.registry import FUNCTIONS
from kiln.structures import BaseDataElement


def test_pseudo_collate_keeps_lists():
    t1, t2 = torch.zeros(3, 4, 5), torch.ones(3, 6, 2)
    s1, s2 = BaseDataElement(metainfo=dict(i=1)), BaseDataElement(metainfo=dict(i=2))
    out = pseudo_collate([dict(inputs=t1, data_samples=s1), dict(inputs=t2, data_samples=s2)])
    assert set(out) == {'inputs', 'data_samples'}
    assert out['inputs'][0] is t1 and out['inputs'][1] is t2
    assert out['data_samples'] == [s1, s2]
    assert pseudo_collate([(1, 'a'), (2, 'b')]) == [[1, 2], ['a', 'b']]
    P = namedtuple('P', 'x y')
    assert pseudo_collate([P(1, 2), P(3, 4)]) == P([1, 3], [2, 4])
    with pytest.raises(RuntimeError, match='item 1 has 1 elements'):
        pseudo_collate([[1, 2], [3]])


def test_default_collate_stacks_but_keeps_elements():
    s1, s2 = BaseDataElement(), BaseDataElement()
    out = default_collate([dict(inputs=torch.zeros(2), n=1, a=np.ones(2), ds=s1, name='x'),
                           dict(inputs=torch.ones(2), n=2, a=np.zeros(2), ds=s2, name='y')])
    assert torch.equal(out['inputs'], torch.tensor([[0., 0.], [1., 1.]]))
    assert torch.equal(out['n'], torch.tensor([1, 2]))
    assert out['a'].shape == (2, 2) and isinstance(out['a'], torch.Tensor)
    assert out['ds'] == [s1, s2] and out['name'] == ['x', 'y']


def test_collate_functions_are_registered():
    assert FUNCTIONS.get('pseudo_collate') is pseudo_collate
    assert FUNCTIONS.get('default_collate') is default_collate


def test_worker_init_fn_seeds_every_library():
    worker_init_fn(1, num_workers=2, rank=1, seed=10)  # seed = 2 * 1 + 1 + 10 = 13
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(13)
    np.random.seed(13)
    torch.manual_seed(13)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
