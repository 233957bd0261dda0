"""Hook priorities (MMEngine's ``Priority`` levels): a smaller value runs earlier at every mount point."""
from __future__ import annotations

from enum import Enum

__all__ = ['Priority', 'get_priority']


class Priority(Enum):
    """Named hook priority levels, 0 (first) to 100 (last).

    Hooks of equal priority run in registration order. The default hooks use VERY_HIGH (RuntimeInfoHook),
    NORMAL (IterTimerHook, DistSamplerSeedHook), BELOW_NORMAL (LoggerHook), LOW (ParamSchedulerHook) and
    VERY_LOW (CheckpointHook); a custom hook is NORMAL unless it says otherwise.
    """

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """Turn a priority given as an int (0..100), a level name (``'NORMAL'``, case-insensitive) or a
    ``Priority`` member into its integer value.

    Raises:
        ValueError: an int outside 0..100.
        KeyError: an unknown level name (the message lists the valid names).
        TypeError: any other type.
    """
    if isinstance(priority, Priority):
        return priority.value
    if isinstance(priority, bool):
        raise TypeError(f'hook priority must be an int, a level name or Priority, got {priority!r}')
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            raise ValueError(f'hook priority must be in 0..100, got {priority}')
        return priority
    if isinstance(priority, str):
        try:
            return Priority[priority.upper()].value
        except KeyError:
            names = ', '.join(p.name for p in Priority)
            raise KeyError(f'unknown hook priority {priority!r}; expected one of {names} or an int in '
                           '0..100') from None
    raise TypeError(f'hook priority must be an int, a level name or Priority, got {type(priority).__name__}')
