"""Suite-wide test settings.

The suite runs as two pytest-xdist workers on a 2-core machine: one intra-op thread per worker avoids
oversubscription, which otherwise makes convolution-heavy tests several times slower.
"""
import torch

torch.set_num_threads(1)
