"""Colour specifications -> RGB tuples."""
from __future__ import annotations

import numbers
from typing import Any

__all__ = ['to_rgb', 'expand_colors', 'expand']

RGB = tuple[int, int, int]

# matplotlib's one-letter colours (MMEngine accepts them, e.g. edge_colors='g')
_LETTERS: dict[str, RGB] = {
    'b': (0, 0, 255), 'g': (0, 128, 0), 'r': (255, 0, 0), 'c': (0, 191, 191),
    'm': (191, 0, 191), 'y': (191, 191, 0), 'k': (0, 0, 0), 'w': (255, 255, 255),
}


def to_rgb(color: Any) -> RGB:
    """Convert a colour to an ``(r, g, b)`` tuple of ints in 0..255.

    Accepts a matplotlib letter (``'g'``), a CSS/X11 name (``'red'``), ``'#rrggbb'``,
    or a sequence of 3 (or 4, alpha dropped) numbers in 0..255.

    Raises:
        ValueError: Unknown name or malformed sequence.
    """
    if isinstance(color, str):
        if color in _LETTERS:
            return _LETTERS[color]
        from PIL import ImageColor
        try:
            return tuple(ImageColor.getrgb(color)[:3])  # type: ignore[return-value]
        except ValueError:
            raise ValueError(f'unknown colour name {color!r}') from None
    try:
        values = [int(round(float(c))) for c in color]
    except TypeError:
        raise ValueError(f'a colour must be a name or 3 numbers in 0..255, got {color!r}') from None
    if len(values) not in (3, 4) or not all(0 <= v <= 255 for v in values):
        raise ValueError(f'a colour must be a name or 3 numbers in 0..255, got {color!r}')
    return tuple(values[:3])  # type: ignore[return-value]


def _is_single(color: Any) -> bool:
    if color is None or isinstance(color, str):
        return True
    try:
        return len(color) in (3, 4) and all(not isinstance(c, (str, tuple, list)) and
                                            not hasattr(c, '__len__') for c in color)
    except TypeError:
        return False


def expand_colors(colors: Any, n: int, what: str = 'colors') -> list[RGB | None]:
    """Turn one colour or a list of ``n`` colours into ``n`` RGB tuples.

    ``None`` / ``'none'`` entries stay ``None`` (nothing drawn).

    Raises:
        ValueError: A list whose length is not ``n``, or a bad colour (message names
            ``what`` and the index).
    """
    def one(c: Any, where: str) -> RGB | None:
        if c is None or (isinstance(c, str) and c.lower() == 'none'):
            return None
        try:
            return to_rgb(c)
        except ValueError as e:
            raise ValueError(f'{what}{where}: {e}') from None

    if _is_single(colors):
        return [one(colors, '')] * n
    colors = list(colors)
    if len(colors) != n:
        raise ValueError(f'{what}: got {len(colors)} colours for {n} items')
    return [one(c, f'[{i}]') for i, c in enumerate(colors)]


def expand(values: Any, n: int, what: str) -> list:
    """Broadcast a scalar (or a str) to ``n`` items, or check a sequence has ``n`` items."""
    if values is None or isinstance(values, (str, numbers.Number, dict)):
        return [values] * n
    if hasattr(values, 'ndim') and values.ndim == 0:
        return [values.item()] * n
    values = list(values)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f'{what}: got {len(values)} values for {n} items')
    return values
