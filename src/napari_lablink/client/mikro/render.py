"""Channel colours and contrast limits on generation 2, kept as the server's RGB views.

Generation 2 keeps how an image is rendered in "RGB render contexts" of "RGB views": per
channel range a ``colorMap`` (an enum of named maps), a ``baseColor`` (RGBA in 0..255, the colour
of the ``INTENSITY`` map), ``contrastLimitMin``/``contrastLimitMax`` and whether it is ``active``.
Their channel range is half-open, ``cMin <= c < cMax``, as the server's own default views are.
An upload writes one view per channel: the named map when the colour is one (napari's blue
stays blue), else ``INTENSITY`` with the colour as base colour, and always the base colour and the
contrast limits. On open, views of a monochrome map give the channel its colour; the server's
automatic views (``VIRIDIS`` for every channel of an image registered without views) carry no
colour a channel could take and are left to the usual fallback (the emission wavelength).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from napari_lablink.client.colors import RGB
from napari_lablink.client.models import Channel

__all__ = ["channel_looks", "rgb_views"]

#: The server's monochrome maps (black to the colour) by their colour, in 0..255.
_MONOCHROME: dict[str, tuple[int, int, int]] = {
    "RED": (255, 0, 0),
    "GREEN": (0, 255, 0),
    "BLUE": (0, 0, 255),
    "CYAN": (0, 255, 255),
    "MAGENTA": (255, 0, 255),
    "YELLOW": (255, 255, 0),
    "GREY": (255, 255, 255),
}
_BY_COLOUR = {rgb: name for name, rgb in _MONOCHROME.items()}
#: The map whose colour is the view's base colour.
_INTENSITY = "INTENSITY"


def _bytes(rgb: RGB) -> tuple[int, int, int]:
    red, green, blue = (max(0, min(255, round(v * 255))) for v in rgb)
    return red, green, blue


def rgb_views(channels: Sequence[Channel]) -> list[dict[str, Any]]:
    """``FromArrayLikeInput.rgbViews`` for ``channels``: one view per channel that has a colour
    or contrast limits."""
    views = []
    for index, channel in enumerate(channels):
        if channel.color is None and channel.contrast_limits is None:
            continue
        view: dict[str, Any] = {"cMin": index, "cMax": index + 1, "active": True}
        if channel.color is not None:
            colour = _bytes(channel.color)
            view["colorMap"] = _BY_COLOUR.get(colour, _INTENSITY)
            view["baseColor"] = [*colour, 255]
        else:
            view["colorMap"] = "GREY"
        if channel.contrast_limits is not None:
            view["contrastLimitMin"], view["contrastLimitMax"] = channel.contrast_limits
        views.append(view)
    return views


def channel_looks(
    contexts: Sequence[dict[str, Any]], count: int
) -> dict[int, tuple[RGB | None, tuple[float, float] | None]]:
    """(colour, contrast limits) per channel index from an image's ``rgbContexts``.

    The first context with views decides (the server makes one for an upload's views).
    """
    views = next((c.get("views") for c in contexts if c.get("views")), None) or []
    looks: dict[int, tuple[RGB | None, tuple[float, float] | None]] = {}
    for view in views:
        low = view.get("cMin")
        if low is None:
            continue
        high = view.get("cMax")
        colour = _colour(view)
        limits = _limits(view)
        for index in range(int(low), min(count, int(high) if high is not None else low + 1)):
            looks.setdefault(index, (colour, limits))
    return looks


def _colour(view: dict[str, Any]) -> RGB | None:
    name = view.get("colorMap")
    base = view.get("baseColor")
    if name == _INTENSITY and isinstance(base, list) and len(base) >= 3:
        values = tuple(int(v) for v in base[:3])
    elif name in _MONOCHROME:
        values = _MONOCHROME[name]
    else:
        return None
    red, green, blue = (v / 255 for v in values)
    return red, green, blue


def _limits(view: dict[str, Any]) -> tuple[float, float] | None:
    low, high = view.get("contrastLimitMin"), view.get("contrastLimitMax")
    if low is None or high is None or not float(high) > float(low):
        return None
    return float(low), float(high)
