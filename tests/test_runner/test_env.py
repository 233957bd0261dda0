import io
import random
import re

import numpy as np
import torch

from kiln.runner.env import collect_env, get_rng_state, make_timestamp, set_random_seed, set_rng_state, setup_env


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_set_random_seed_is_reproducible():
    assert set_random_seed(123) == 123
    first = _draw()
    set_random_seed(123)
    assert _draw() == first
    set_random_seed(124)
    assert _draw() != first


def test_seed_none_draws_a_seed():
    seed = set_random_seed(None)
    assert isinstance(seed, int) and 0 <= seed < 2**31


def test_rng_state_roundtrip_through_weights_only_checkpoint():
    set_random_seed(7)
    state = get_rng_state()
    buf = io.BytesIO()
    torch.save(dict(rng_state=state), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)['rng_state']
    expected = _draw()
    _draw()
    set_rng_state(loaded)
    assert _draw() == expected


def test_timestamp_format():
    assert re.fullmatch(r'\d{8}_\d{6}', make_timestamp())


def test_collect_env_is_cheap_and_complete():
    env = collect_env()
    assert env['PyTorch'] == torch.__version__
    assert env['CUDA available'] == torch.cuda.is_available()
    assert env['world size'] == 1
    assert {'Python', 'TorchVision', 'NumPy', 'kiln'} <= set(env)


def test_setup_env_without_launcher_is_not_distributed():
    assert setup_env(dict(cudnn_benchmark=False, mp_cfg=dict(opencv_num_threads=0)), 'none') is False
