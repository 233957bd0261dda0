"""kiln: a PyTorch training engine (MMEngine-style) with a detection toolbox (kiln.det)."""
__version__ = "0.1.0"
