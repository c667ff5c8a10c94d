"""Choosing some channels of an image: a 40-channel MIBItracker FOV rarely needs all 40 at once.

Channels are picked by name or by index, so a URI option (``?channels=CD45,dsDNA``), a script
and a channel picker all say the same thing. The result is a :class:`RemoteImage` of only those
channels, still lazy: pixels of the others are never fetched.
"""

from __future__ import annotations

from collections.abc import Iterable

from napari_lablink.client.errors import NotFoundError
from napari_lablink.client.models import RemoteImage

__all__ = ["channel_index", "parse_channel_list", "select_channels"]


def parse_channel_list(text: str | None) -> list[str]:
    """``"CD45, dsDNA"`` -> ``["CD45", "dsDNA"]``; empty or None -> ``[]`` (all channels)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _base(name: str) -> str:
    """A tracker channel label without its mass: ``"CD45 (150)"`` -> ``"cd45"``."""
    return name.split(" (", 1)[0].strip().casefold()


def channel_index(image: RemoteImage, wanted: str | int) -> int:
    """The index of channel ``wanted`` (a name, a name without its mass, or an index)."""
    count = image.shape[0] if "c" in image.dims else 1
    names = [c.name for c in image.channels] or [f"Channel {i}" for i in range(count)]
    text = str(wanted).strip()
    for match in (
        lambda n: n == text,
        lambda n: n.casefold() == text.casefold(),
        lambda n: _base(n) == _base(text),
    ):
        found = [i for i, n in enumerate(names) if match(n)]
        if found:
            return found[0]
    if text.isdigit() and int(text) < count:
        return int(text)
    raise NotFoundError(
        f"{image.name} has no channel {text!s}",
        obj=image.uri,
        hint=f"Pick one of: {', '.join(names)}",
    )


def select_channels(image: RemoteImage, wanted: Iterable[str | int]) -> RemoteImage:
    """``image`` with only the ``wanted`` channels, in the order asked; all if none are asked."""
    indices = list(dict.fromkeys(channel_index(image, w) for w in wanted))
    if not indices or "c" not in image.dims:
        return image
    channels = [image.channels[i] for i in indices] if image.channels else []
    levels = [level[indices] for level in image.levels]
    return image.model_copy(update={"levels": levels, "channels": channels})
