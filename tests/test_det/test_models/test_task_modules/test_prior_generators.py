import math

import pytest
import torch

from kiln.det.models.task_modules import MlvlPointGenerator
from kiln.registry import MODELS


def test_point_generator_positions_and_order():
    gen = MlvlPointGenerator([8, 16], offset=0.5)
    p8, p16 = gen.grid_priors([(2, 3), (1, 2)])
    torch.testing.assert_close(p8, torch.tensor([[4., 4.], [12., 4.], [20., 4.], [4., 12.], [12., 12.], [20., 12.]]))
    torch.testing.assert_close(p16, torch.tensor([[8., 8.], [24., 8.]]))
    with_stride = gen.single_level_grid_priors((1, 2), 1, with_stride=True)
    torch.testing.assert_close(with_stride[:, 2:], torch.full((2, 2), 16.0))
    flags = gen.valid_flags([(2, 3)], pad_shape=(16, 10))
    assert flags[0].tolist() == [True, True, False, True, True, False]
    with pytest.raises(ValueError, match='strides'):
        gen.grid_priors([(2, 3)])


def test_anchor_generator_retinanet_base_anchors():
    gen = MODELS.build(dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                            ratios=[0.5, 1.0, 2.0], strides=[8, 16]))
    assert gen.num_base_priors == [9, 9]
    base = gen.base_anchors[0]
    # ratio 1, scale 4 (index 3 in scale-major order: ratios outer, scales inner): a 32 x 32 box on (0, 0)
    torch.testing.assert_close(base[3], torch.tensor([-16., -16., 16., 16.]))
    w = base[:, 2] - base[:, 0]
    h = base[:, 3] - base[:, 1]
    torch.testing.assert_close(h / w, torch.tensor([0.5] * 3 + [1.0] * 3 + [2.0] * 3))
    torch.testing.assert_close(torch.sqrt(w * h)[3:6], 32 * torch.tensor([1, 2 ** (1 / 3), 2 ** (2 / 3)]))
    anchors = gen.grid_priors([(2, 2), (1, 1)])
    assert anchors[0].shape == (2 * 2 * 9, 4)
    # cell (row 0, col 1) is shifted by one stride in x
    torch.testing.assert_close(anchors[0][9:18] - anchors[0][:9], torch.tensor([8., 0., 8., 0.]).expand(9, 4))
    assert math.isclose(float(anchors[1][3, 2]), 32.0)


def test_anchor_valid_flags_repeat_the_cell_flag_for_each_base_anchor():
    gen = MODELS.build(dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                            ratios=[0.5, 2.0], strides=[8]))
    (flags,) = gen.valid_flags([(2, 3)], pad_shape=(16, 10))  # cells start at x=0, 8 (<10) and 16 (>=10)
    assert flags.tolist() == [True, True, True, True, False, False] * 2
