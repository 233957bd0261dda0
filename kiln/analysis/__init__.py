"""Model analysis: parameter, FLOP and activation counts (``get_model_complexity_info``)."""
from .complexity import format_size, get_model_complexity_info

__all__ = ['get_model_complexity_info', 'format_size']
