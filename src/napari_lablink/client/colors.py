"""Channel colours as servers write them, turned into RGB triples in 0..1."""

from __future__ import annotations

import re

__all__ = ["parse_color", "wavelength_to_rgb"]

RGB = tuple[float, float, float]

_NAMED: dict[str, RGB] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "lime": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "fuchsia": (1.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "gray": (1.0, 1.0, 1.0),
    "grey": (1.0, 1.0, 1.0),
    "orange": (1.0, 0.65, 0.0),
}
_NUMBERS = re.compile(r"[-+]?\d*\.?\d+")


def parse_color(text: object) -> RGB | None:
    """``#rgb``, ``#rrggbb(aa)``, ``rgb(r, g, b)``, ``r,g,b`` (0..255 or 0..1) or a CSS name.

    Unknown forms give None (the viewer then picks a colormap) rather than an error: a colour is
    a nicety, never a reason not to open an image.
    """
    if isinstance(text, list | tuple) and len(text) >= 3:
        values = [float(v) for v in text[:3]]
    elif isinstance(text, str):
        value = text.strip().lower()
        if value in _NAMED:
            return _NAMED[value]
        if value.startswith("#") and len(value) in (4, 7, 9):
            digits = value[1:]
            if len(digits) == 3:
                digits = "".join(d * 2 for d in digits)
            try:
                red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
            except ValueError:
                return None
            return red, green, blue
        values = [float(v) for v in _NUMBERS.findall(value)[:3]]
        if len(values) < 3:
            return None
    else:
        return None
    scale = 255.0 if max(values) > 1 else 1.0
    red, green, blue = (min(max(v / scale, 0.0), 1.0) for v in values)
    return red, green, blue


def wavelength_to_rgb(nm: float | None) -> RGB | None:
    """An approximate display colour for an emission wavelength (380-780 nm), None outside."""
    if nm is None or not 380 <= nm <= 780:
        return None
    if nm < 440:
        r, g, b = (440 - nm) / 60, 0.0, 1.0
    elif nm < 490:
        r, g, b = 0.0, (nm - 440) / 50, 1.0
    elif nm < 510:
        r, g, b = 0.0, 1.0, (510 - nm) / 20
    elif nm < 580:
        r, g, b = (nm - 510) / 70, 1.0, 0.0
    elif nm < 645:
        r, g, b = 1.0, (645 - nm) / 65, 0.0
    else:
        r, g, b = 1.0, 0.0, 0.0
    return (r, g, b)
