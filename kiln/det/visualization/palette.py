"""Class colour palettes for detection visualisation (RGB tuples of ints in 0..255)."""
from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np

Color = tuple[int, int, int]


def make_palette(num_classes: int) -> list[Color]:
    """``num_classes`` distinct, deterministic RGB colours (golden-ratio hue walk, alternating brightness).

    Used as the default ``METAINFO['palette']`` of kiln's datasets.
    """
    colors = []
    for i in range(num_classes):
        hue = (i * 0.618033988749895) % 1.0
        sat = 0.85 if i % 2 == 0 else 0.65
        val = 0.95 if (i // 2) % 2 == 0 else 0.75
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colors.append((int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5)))
    return colors


def _to_rgb(color: str | Sequence[int]) -> Color:
    if isinstance(color, str):
        from PIL import ImageColor
        try:
            return tuple(ImageColor.getrgb(color)[:3])  # type: ignore[return-value]
        except ValueError:
            raise ValueError(f'Unknown colour name {color!r}') from None
    values = tuple(int(c) for c in color)
    if len(values) != 3 or not all(0 <= c <= 255 for c in values):
        raise ValueError(f'A colour must be 3 ints in 0..255 (RGB), got {color!r}')
    return values  # type: ignore[return-value]


def get_palette(palette: str | Sequence | None, num_classes: int) -> list[Color]:
    """Expand a palette spec into ``num_classes`` RGB colours.

    Args:
        palette: ``None`` or ``'random'`` (deterministic random colours, seed 42), ``'kiln'`` (the default
            :func:`make_palette` colours), a colour name (``'red'``, ``'#ff0000'``; same colour for every class),
            one RGB tuple (same colour for every class) or a list of RGB tuples (cycled when shorter than
            ``num_classes``).
        num_classes: how many colours to return.

    Raises:
        ValueError: an unknown colour name or a malformed RGB tuple.
    """
    num_classes = max(int(num_classes), 0)
    if palette is None or (isinstance(palette, str) and palette == 'random'):
        rng = np.random.RandomState(42)
        return [tuple(int(c) for c in rng.randint(0, 256, size=3)) for _ in range(num_classes)]  # type: ignore
    if isinstance(palette, str) and palette == 'kiln':
        return make_palette(num_classes)
    if isinstance(palette, str) or (len(palette) == 3 and all(isinstance(c, (int, np.integer)) for c in palette)):
        return [_to_rgb(palette)] * num_classes  # type: ignore[arg-type]
    colors = [_to_rgb(c) for c in palette]
    if not colors:
        raise ValueError('palette is an empty list')
    return [colors[i % len(colors)] for i in range(num_classes)]
